//! The admission rules for a `PaymentService`: everything the CRD schema and its CEL rules
//! check, and what only the operator can (a cron schedule that parses, names that fit every
//! child). The reconcile applies them before touching anything, so a spec that got past
//! admission (an older CRD, a cluster without CEL) is refused with every bad field named, and
//! nothing is applied.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use operator_core::FieldError;
use operator_core::validation::{self, FieldErrors, SpecRules};

use crate::crd::{
    Autoscaling, Backup, CanaryAnalysis, DeploymentStrategy, HttpProbe, MAX_ANALYSIS_METRICS,
    PaymentServiceSpec,
};
use crate::resources::BACKUP_SUFFIX;
use crate::rollout::analysis::SuccessCondition;

/// Longest name whose children (`<name>-canary`, `<name>-green`) are DNS labels.
pub const MAX_NAME_LENGTH: usize = 63 - "-canary".len();
/// Longest name with backups on: a CronJob's name may have at most 52 characters.
pub const MAX_NAME_LENGTH_WITH_BACKUP: usize = 52 - BACKUP_SUFFIX.len();

impl SpecRules for PaymentServiceSpec {
    /// Every problem with a resource's name and spec; empty when it can be realised.
    fn errors(&self, name: &str) -> Vec<FieldError> {
        let max_name = if self.backup().is_some() {
            MAX_NAME_LENGTH_WITH_BACKUP
        } else {
            MAX_NAME_LENGTH
        };
        let mut errors = FieldErrors::for_resource(name, &"-".repeat(63 - max_name));
        errors.push(
            "spec.version",
            validation::label_value(&self.version, false),
        );
        errors.container(&self.image, self.resources.as_ref());
        errors.in_range("spec.replicas", self.replicas, 0..=1000);

        if let Some(a) = &self.autoscaling {
            autoscaling(&mut errors, a);
        }

        if let Some(h) = &self.health_check {
            for (field, probe) in [("liveness", &h.liveness), ("readiness", &h.readiness)] {
                if let Some(p) = probe {
                    check_probe(&mut errors, field, p);
                }
            }
        }

        config(&mut errors, self);

        monitoring(&mut errors, self);

        security(&mut errors, self);

        if let Some(s) = &self.deployment_strategy {
            strategy(&mut errors, name, s);
        }

        if let Some(b) = &self.backup {
            backup(&mut errors, b);
        }
        errors.into_vec()
    }

    /// Valid but risky: what the webhook answers with a warning that `kubectl` shows.
    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.replicas == 1 {
            warnings.push(
                "spec.replicas is 1: a node drain or a crash stops payments until the pod is back; use at least 2"
                    .to_string(),
            );
        }
        warnings
    }
}

/// The autoscaler's bounds and targets.
fn autoscaling(errors: &mut FieldErrors, a: &Autoscaling) {
    errors.in_range("spec.autoscaling.maxReplicas", a.max_replicas, 1..=1000);
    if let Some(min) = a.min_replicas {
        errors.check(
            (1..=1000).contains(&min) && min <= a.max_replicas,
            "spec.autoscaling.minReplicas",
            format!(
                "must be between 1 and maxReplicas ({}), got {min}",
                a.max_replicas
            ),
        );
    }
    for (field, value) in [
        (
            "targetCPUUtilizationPercentage",
            a.target_cpu_utilization_percentage,
        ),
        (
            "targetMemoryUtilizationPercentage",
            a.target_memory_utilization_percentage,
        ),
    ] {
        if let Some(v) = value {
            errors.check(
                (1..=100).contains(&v),
                &format!("spec.autoscaling.{field}"),
                format!("must be between 1 and 100, got {v}"),
            );
        }
    }
}

/// The application's configuration: rate limiting and the database pool.
fn config(errors: &mut FieldErrors, spec: &PaymentServiceSpec) {
    if let Some(f) = spec.config.as_ref().and_then(|c| c.features.as_ref()) {
        errors.check(
            !f.enable_rate_limiting || f.rate_limit_per_second.is_some_and(|r| r >= 1),
            "spec.config.features.rateLimitPerSecond",
            "must be at least 1 when enableRateLimiting is true",
        );
    }
    if let Some(pool) = spec
        .config
        .as_ref()
        .and_then(|c| c.database.as_ref())
        .and_then(|d| d.pool_size)
    {
        errors.in_range("spec.config.database.poolSize", pool, 1..=1000);
    }
}

/// Prometheus scraping and tracing.
fn monitoring(errors: &mut FieldErrors, spec: &PaymentServiceSpec) {
    if let Some(p) = spec.monitoring.as_ref().and_then(|m| m.prometheus.as_ref()) {
        errors.check(
            (1024..=65535).contains(&p.port) && p.port != 8080,
            "spec.monitoring.prometheus.port",
            format!(
                "must be a port from 1024 to 65535 (the pods cannot bind a lower one) other than 8080 (which serves traffic), got {}",
                p.port
            ),
        );
        errors.check(
            p.path.starts_with('/'),
            "spec.monitoring.prometheus.path",
            format!("must start with '/', got {:?}", p.path),
        );
    }
    if let Some(t) = spec.monitoring.as_ref().and_then(|m| m.tracing.as_ref()) {
        errors.check(
            !t.enabled || t.jaeger_endpoint.is_some(),
            "spec.monitoring.tracing.jaegerEndpoint",
            "is required when tracing is enabled",
        );
        if let Some(rate) = t.sampling_rate {
            errors.check(
                (0.0..=1.0).contains(&rate),
                "spec.monitoring.tracing.samplingRate",
                format!("must be between 0 and 1, got {rate}"),
            );
        }
    }
}

/// TLS and the pods' ServiceAccount.
fn security(errors: &mut FieldErrors, spec: &PaymentServiceSpec) {
    if let Some(tls) = spec.security.as_ref().and_then(|s| s.tls.as_ref()) {
        errors.check(
            !tls.enabled || tls.secret_name.as_deref().is_some_and(|s| !s.is_empty()),
            "spec.security.tls.secretName",
            "is required when tls is enabled",
        );
    }
    if let Some(sa) = spec
        .security
        .as_ref()
        .and_then(|s| s.rbac.as_ref())
        .and_then(|r| r.service_account_name.as_deref())
    {
        errors.push(
            "spec.security.rbac.serviceAccountName",
            validation::dns_subdomain(sa),
        );
    }
}

/// The backup's schedule, time zone and retention.
fn backup(errors: &mut FieldErrors, b: &Backup) {
    errors.push(
        "spec.backup.schedule",
        validation::cron_schedule(&b.schedule),
    );
    if let Some(zone) = &b.time_zone {
        errors.push("spec.backup.timeZone", validation::time_zone(zone));
    }
    errors.check(
        (1..=3650).contains(&b.retention),
        "spec.backup.retention",
        format!("must be between 1 and 3650 days, got {}", b.retention),
    );
    if let Some(git) = &b.git {
        if errors
            .push("spec.backup.git.url", validation::https_url(&git.url))
            .is_some()
        {
            let bare = operator_core::credentials::url_credentials(&git.url).map_err(|_| {
                "carries a credential: put the username and password in the Secret credentialsSecret names, not in the URL".to_string()
            });
            errors.push("spec.backup.git.url", bare);
        }
        errors.push(
            "spec.backup.git.credentialsSecret",
            validation::dns_subdomain(&git.credentials_secret),
        );
        if let Some(branch) = &git.branch {
            errors.push("spec.backup.git.branch", branch_name(branch));
        }
    }
}

/// A Git branch name Git accepts (`git check-ref-format`), kept to a safe alphabet.
fn branch_name(branch: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
    let fine = !branch.is_empty()
        && branch.chars().all(allowed)
        && !branch.contains("..")
        && !branch.contains("//")
        && !branch.starts_with(['/', '.', '-'])
        && !branch.ends_with(['/', '.'])
        && !branch.ends_with(".lock")
        && !branch.split('/').any(|part| part.starts_with('.'));
    if fine {
        Ok(())
    } else {
        Err(format!(
            "{branch:?} is not a branch name: use letters, digits, '-', '_', '.' and '/' (no '..', no part starting with '.', not ending in '/', '.' or '.lock')"
        ))
    }
}

fn strategy(errors: &mut FieldErrors, name: &str, s: &DeploymentStrategy) {
    let field = "spec.deploymentStrategy";
    let members = [
        s.rolling_update.is_some(),
        s.canary.is_some(),
        s.blue_green.is_some(),
    ];
    errors.check(
        members.iter().filter(|m| **m).count() == 1,
        field,
        "set exactly one of rollingUpdate, canary and blueGreen",
    );
    if let Some(surge) = s.rolling_update.as_ref().and_then(|r| r.max_surge.as_ref()) {
        let valid = match surge {
            IntOrString::Int(n) => *n >= 1,
            IntOrString::String(p) => p
                .strip_suffix('%')
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| (1..=100).contains(&n)),
        };
        errors.check(
            valid,
            &format!("{field}.rollingUpdate.maxSurge"),
            format!("must be a number of pods of at least 1 or a percentage from 1% to 100% (no pod is taken down first, so the update needs room for one), got {surge:?}"),
        );
    }
    if let Some(canary) = &s.canary {
        let steps = &canary.steps;
        errors.check(
            !steps.is_empty(),
            &format!("{field}.canary.steps"),
            "a canary strategy needs at least one step",
        );
        errors.check(
            steps.len() <= crate::crd::MAX_CANARY_STEPS,
            &format!("{field}.canary.steps"),
            format!(
                "at most {} steps, got {}",
                crate::crd::MAX_CANARY_STEPS,
                steps.len()
            ),
        );
        let mut previous = 0;
        for (i, step) in steps.iter().enumerate() {
            errors.check(
                (1..=100).contains(&step.set_weight) && step.set_weight > previous,
                &format!("{field}.canary.steps[{i}].setWeight"),
                format!(
                    "must be between 1 and 100 and above the step before ({previous}), got {}",
                    step.set_weight
                ),
            );
            previous = step.set_weight;
            if let Some(pause) = &step.pause {
                errors.push(
                    &format!("{field}.canary.steps[{i}].pause.duration"),
                    validation::duration(&pause.duration, &["s", "m", "h"]),
                );
            }
        }
        if let Some(a) = &canary.analysis {
            analysis(errors, &format!("{field}.canary.analysis"), a);
        }
    }
    if let Some(preview) = s
        .blue_green
        .as_ref()
        .and_then(|b| b.preview_service.as_deref())
    {
        errors.push(
            &format!("{field}.blueGreen.previewService"),
            validation::resource_name(preview, ""),
        );
        errors.check(
            preview != name,
            &format!("{field}.blueGreen.previewService"),
            format!(
                "{preview:?} is the service's own Service: choose another name, e.g. {name}-preview"
            ),
        );
    }
    if let Some(d) = s.progress_deadline_seconds {
        errors.check(
            (1..=86400).contains(&d),
            &format!("{field}.progressDeadlineSeconds"),
            format!("must be between 1 and 86400, got {d}"),
        );
    }
}

fn analysis(errors: &mut FieldErrors, field: &str, a: &CanaryAnalysis) {
    if let Some(d) = a.step_deadline_seconds {
        errors.check(
            (1..=86400).contains(&d),
            &format!("{field}.stepDeadlineSeconds"),
            format!("must be between 1 and 86400, got {d}"),
        );
    }
    let metrics = a.metrics.as_deref().unwrap_or_default();
    errors.check(
        metrics.len() <= MAX_ANALYSIS_METRICS,
        &format!("{field}.metrics"),
        format!(
            "at most {MAX_ANALYSIS_METRICS} metrics, got {}",
            metrics.len()
        ),
    );
    for (i, m) in metrics.iter().enumerate() {
        let at = format!("{field}.metrics[{i}]");
        errors.push(
            &format!("{at}.name"),
            validation::resource_name(&m.name, ""),
        );
        errors.check(
            metrics[..i].iter().all(|other| other.name != m.name),
            &format!("{at}.name"),
            format!(
                "{:?} names another metric too: give each its own name",
                m.name
            ),
        );
        errors.check(
            !m.query.trim().is_empty() && m.query.len() <= 4096,
            &format!("{at}.query"),
            "must be a PromQL query of 1 to 4096 characters",
        );
        errors.check(
            SuccessCondition::parse(&m.success_condition).is_some(),
            &format!("{at}.successCondition"),
            format!(
                "{:?} does not read: write `result`, a comparison (<, <=, >, >=, ==, !=) and a number, e.g. `result >= 0.99`",
                m.success_condition
            ),
        );
        if let Some(interval) = &m.interval {
            errors.push(
                &format!("{at}.interval"),
                validation::duration(interval, &["s", "m", "h"]),
            );
        }
        if let Some(limit) = m.failure_limit {
            errors.check(
                (0..=100).contains(&limit),
                &format!("{at}.failureLimit"),
                format!("must be between 0 and 100, got {limit}"),
            );
        }
    }
}

fn check_probe(errors: &mut FieldErrors, which: &str, probe: &HttpProbe) {
    let field = format!("spec.healthCheck.{which}");
    errors.check(
        probe.http_get.path.starts_with('/'),
        &format!("{field}.httpGet.path"),
        format!("must start with '/', got {:?}", probe.http_get.path),
    );
    errors.check(
        (1..=65535).contains(&probe.http_get.port),
        &format!("{field}.httpGet.port"),
        format!("must be between 1 and 65535, got {}", probe.http_get.port),
    );
    errors.check(
        probe
            .initial_delay_seconds
            .is_none_or(|d| (0..=3600).contains(&d)),
        &format!("{field}.initialDelaySeconds"),
        "must be between 0 and 3600",
    );
    errors.check(
        probe.period_seconds.is_none_or(|p| (1..=3600).contains(&p)),
        &format!("{field}.periodSeconds"),
        "must be between 1 and 3600",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Backup, CanaryStep, DeploymentStrategy, Pause};
    use crate::resources::tests::spec;
    use operator_core::validation::fields;

    #[test]
    fn the_seed_example_is_valid() {
        assert_eq!(spec().errors("payment-initiation-service"), vec![]);
    }

    /// What a real API server (or the container runtime) would refuse later is refused here,
    /// with its field named: an unknown time zone, unreadable or negative quantities, a limit
    /// below its request, an image reference that is not one.
    #[test]
    fn what_a_real_server_would_refuse_is_refused_at_our_door() {
        let mut s = spec();
        s.backup = Some(Backup {
            enabled: true,
            schedule: "0 2 * * *".into(),
            retention: 30,
            time_zone: Some("Mars/Olympus".into()),
            git: None,
        });
        s.image = format!("registry.example/{}:1", "a".repeat(10_000));
        s.resources = Some(
            serde_json::from_value(serde_json::json!({
                "requests": {"memory": "lots", "cpu": "500m"},
                "limits": {"cpu": "-1"}
            }))
            .unwrap(),
        );
        let errors = s.errors("payment-initiation-service");
        assert_eq!(
            fields(&errors),
            [
                "spec.image",
                "spec.resources.requests.memory",
                "spec.resources.limits.cpu",
                "spec.backup.timeZone"
            ]
        );
        assert!(
            errors.iter().all(|e| e.message.len() < 400),
            "no message repeats 10,000 characters"
        );
    }

    #[test]
    fn a_git_target_is_https_without_credentials_with_a_branch_git_accepts() {
        let mut s = spec();
        let with_git = |url: &str, secret: &str, branch: Option<&str>| Backup {
            enabled: true,
            schedule: "0 2 * * *".into(),
            retention: 30,
            time_zone: None,
            git: Some(crate::crd::GitBackup {
                url: url.into(),
                credentials_secret: secret.into(),
                branch: branch.map(String::from),
            }),
        };
        s.backup = Some(with_git(
            "https://git.example.com/platform/backups.git",
            "git-backup-credentials",
            Some("backups/payments/ledger"),
        ));
        assert_eq!(s.errors("payment-initiation-service"), vec![]);
        s.backup = Some(with_git(
            "https://bot:hunter2@git.example.com/backups.git",
            "Not_A_Name",
            Some("backups/../main.lock"),
        ));
        let errors = s.errors("payment-initiation-service");
        assert_eq!(
            fields(&errors),
            [
                "spec.backup.git.url",
                "spec.backup.git.credentialsSecret",
                "spec.backup.git.branch"
            ]
        );
        assert!(
            errors.iter().all(|e| !e.message.contains("hunter2")),
            "{errors:?}"
        );
        s.backup = Some(with_git(
            "http://git.example.com/backups.git",
            "creds",
            None,
        ));
        let errors = s.errors("payment-initiation-service");
        assert_eq!(fields(&errors), ["spec.backup.git.url"]);
    }

    #[test]
    fn canary_weights_must_increase_and_pauses_parse() {
        let mut s = spec();
        s.deployment_strategy = Some(DeploymentStrategy::of(
            crate::crd::StrategyType::Canary,
            vec![
                CanaryStep {
                    set_weight: 50,
                    pause: Some(Pause {
                        duration: "5 minutes".into(),
                    }),
                },
                CanaryStep {
                    set_weight: 25,
                    pause: None,
                },
                CanaryStep {
                    set_weight: 101,
                    pause: None,
                },
            ],
            None,
        ));
        assert_eq!(
            fields(&s.errors("svc")),
            vec![
                "spec.deploymentStrategy.canary.steps[0].pause.duration",
                "spec.deploymentStrategy.canary.steps[1].setWeight",
                "spec.deploymentStrategy.canary.steps[2].setWeight",
            ]
        );
    }

    #[test]
    fn analysis_metrics_need_unique_names_a_condition_that_reads_and_an_interval() {
        let mut s = spec();
        let metric = |name: &str, condition: &str, interval: &str| crate::crd::AnalysisMetric {
            name: name.into(),
            query: "payment:success_rate".into(),
            success_condition: condition.into(),
            interval: Some(interval.into()),
            failure_limit: Some(1),
        };
        let mut strategy = DeploymentStrategy::of(
            crate::crd::StrategyType::Canary,
            vec![CanaryStep {
                set_weight: 50,
                pause: None,
            }],
            None,
        );
        if let Some(c) = strategy.canary.as_mut() {
            c.analysis = Some(CanaryAnalysis {
                step_deadline_seconds: None,
                metrics: Some(vec![
                    metric("success-rate", "result >= 0.99", "30s"),
                    metric("success-rate", "result is high", "soon"),
                ]),
            });
        }
        s.deployment_strategy = Some(strategy);
        assert_eq!(
            fields(&s.errors("svc")),
            vec![
                "spec.deploymentStrategy.canary.analysis.metrics[1].name",
                "spec.deploymentStrategy.canary.analysis.metrics[1].successCondition",
                "spec.deploymentStrategy.canary.analysis.metrics[1].interval",
            ]
        );
    }

    #[test]
    fn a_schedule_that_does_not_parse_and_a_name_too_long_for_the_cronjob_are_refused() {
        let mut s = spec();
        s.backup = Some(Backup {
            enabled: true,
            schedule: "61 2 * * *".into(),
            retention: 30,
            time_zone: None,
            git: None,
        });
        let long = "a".repeat(MAX_NAME_LENGTH_WITH_BACKUP + 1);
        let errors = s.errors(&long);
        assert_eq!(
            fields(&errors),
            vec!["metadata.name", "spec.backup.schedule"]
        );
        assert_eq!(
            errors[1].message,
            "field 1 (minute) \"61\" is invalid: number out of bounds; it allows 0-59"
        );
    }

    #[test]
    fn autoscaling_bounds_and_sampling_rate_are_checked() {
        let mut s = spec();
        if let Some(a) = s.autoscaling.as_mut() {
            a.min_replicas = Some(30);
        }
        if let Some(t) = s.monitoring.as_mut().and_then(|m| m.tracing.as_mut()) {
            t.sampling_rate = Some(1.5);
        }
        assert_eq!(
            fields(&s.errors("svc")),
            vec![
                "spec.autoscaling.minReplicas",
                "spec.monitoring.tracing.samplingRate"
            ]
        );
    }
}
