//! The admission rules for a `ClearingAdapter` (seed 001's `validatePaymentProcessor`,
//! `ValidateUpdate` and `Default`): what the schema and its CEL rules check, and what only
//! the operator can (durations, credentials in headers, the load an update scales down
//! under). The reconcile runs them before touching anything, so a spec that got past
//! admission is still refused with every bad field named and nothing applied.

use std::collections::BTreeSet;
use std::time::Duration;

use operator_core::FieldError;
use operator_core::credentials::{is_credential_name, url_credentials};
use operator_core::validation::{self, FieldErrors, SpecRules};

use crate::crd::{
    AdapterConfig, Autoscaling, BankingPartner, CircuitBreaker, ClearingAdapterSpec, Monitoring,
};

/// The longest suffix a child adds to the adapter's name (`<name>-config`).
pub const LONGEST_SUFFIX: &str = "-config";

/// Health checks are never more frequent than this, whatever the spec says.
pub const MIN_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(5);

impl SpecRules for ClearingAdapterSpec {
    /// Every problem with a resource's name and spec; empty when it can be realised.
    fn errors(&self, name: &str) -> Vec<FieldError> {
        let mut errors = FieldErrors::for_resource(name, LONGEST_SUFFIX);
        errors.in_range("spec.replicas", self.replicas, 1..=100);
        partners(&mut errors, &self.config.banking_partners);

        config(&mut errors, &self.config);

        let memory = self
            .resources
            .requests
            .as_ref()
            .and_then(|r| r.get("memory"));
        errors.check(
            memory.is_some(),
            "spec.resources.requests.memory",
            "must be specified (the seed's rule: an adapter without a memory request is the first evicted), e.g. 256Mi",
        );
        validation::resource_requirements(&mut errors, "spec.resources", &self.resources);

        breaker(&mut errors, &self.circuit_breaker);
        errors.push(
            "spec.drainTimeout",
            validation::drain_timeout(&self.drain_timeout),
        );
        errors.check(
            (1024..=65535).contains(&self.monitoring.metrics_port),
            "spec.monitoring.metricsPort",
            format!(
                "must be between 1024 and 65535, got {}",
                self.monitoring.metrics_port
            ),
        );
        monitoring(&mut errors, &self.monitoring);
        if let Some(autoscaling) = &self.autoscaling {
            self::autoscaling(&mut errors, self, autoscaling);
        }
        errors.into_vec()
    }

    /// Valid but risky: what the webhook answers with a warning that `kubectl` shows.
    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let carrying = self
            .config
            .banking_partners
            .iter()
            .filter(|p| p.weight > 0)
            .count();
        if carrying == 1 {
            warnings.push(
                "spec.config.bankingPartners: one partner carries all traffic; when it fails there is none to fail over to"
                    .to_string(),
            );
        }
        warnings
    }
}

/// The business-metrics judgement of `spec.monitoring`: a window Prometheus can compute a
/// rate over (two scrapes at the least), and a threshold that is a share.
fn monitoring(errors: &mut FieldErrors, monitoring: &Monitoring) {
    let rate = monitoring.min_success_rate;
    errors.check(
        (0.0..=1.0).contains(&rate),
        "spec.monitoring.minSuccessRate",
        format!("must be a share between 0 and 1 (0.95 for 95%), got {rate}"),
    );
    let window = errors.push(
        "spec.monitoring.metricsWindow",
        monitoring.metrics_window.read(),
    );
    if let Some(window) = window {
        errors.check(
            (MIN_METRICS_WINDOW..=MAX_METRICS_WINDOW).contains(&window),
            "spec.monitoring.metricsWindow",
            format!(
                "must be between 10s (two scrapes at the least) and 24h, got {:?}",
                monitoring.metrics_window.as_str()
            ),
        );
    }
}

const MIN_METRICS_WINDOW: Duration = Duration::from_secs(10);
const MAX_METRICS_WINDOW: Duration = Duration::from_secs(86_400);

/// Timeouts, health checks, retries, rate limit and encryption of `spec.config`.
fn config(errors: &mut FieldErrors, config: &AdapterConfig) {
    errors.push(
        "spec.config.timeout",
        validation::positive_duration(&config.timeout),
    );
    let interval = errors.push(
        "spec.config.healthCheckInterval",
        config.health_check_interval.read(),
    );
    if let Some(interval) = interval {
        errors.check(
            interval >= MIN_HEALTH_CHECK_INTERVAL,
            "spec.config.healthCheckInterval",
            format!(
                "must be at least {}s (partners are not polled harder than that), got {:?}",
                MIN_HEALTH_CHECK_INTERVAL.as_secs(),
                config.health_check_interval.as_str()
            ),
        );
    }
    if let Some(retry) = &config.retry_config {
        errors.in_range(
            "spec.config.retryConfig.maxRetries",
            retry.max_retries,
            0..=10,
        );
        let initial = errors.push(
            "spec.config.retryConfig.initialBackoff",
            validation::positive_duration(&retry.initial_backoff),
        );
        let max = errors.push(
            "spec.config.retryConfig.maxBackoff",
            validation::positive_duration(&retry.max_backoff),
        );
        if let (Some(initial), Some(max)) = (initial, max) {
            errors.check(
                initial <= max,
                "spec.config.retryConfig.initialBackoff",
                format!(
                    "must not exceed maxBackoff ({:?}), got {:?}",
                    retry.max_backoff.as_str(),
                    retry.initial_backoff.as_str()
                ),
            );
        }
    }
    if let Some(limit) = &config.rate_limit {
        errors.check(
            limit.requests_per_second >= 1,
            "spec.config.rateLimit.requestsPerSecond",
            format!("must be at least 1, got {}", limit.requests_per_second),
        );
        errors.check(
            limit.burst_size >= limit.requests_per_second,
            "spec.config.rateLimit.burstSize",
            format!(
                "must be at least requestsPerSecond ({}), got {}",
                limit.requests_per_second, limit.burst_size
            ),
        );
    }
    if let Some(encryption) = &config.encryption {
        secret_name(
            errors,
            "spec.config.encryption.keySecretRef.name",
            &encryption.key_secret_ref.name,
        );
    }
}

/// The adapter's own circuit breaker: thresholds and how long it stays open.
fn breaker(errors: &mut FieldErrors, breaker: &CircuitBreaker) {
    let field = "spec.circuitBreaker.failureThreshold";
    errors.in_range(field, breaker.failure_threshold, 1..=100);
    let field = "spec.circuitBreaker.successThreshold";
    errors.in_range(field, breaker.success_threshold, 1..=100);
    errors.push(
        "spec.circuitBreaker.timeout",
        validation::positive_duration(&breaker.timeout),
    );
}

/// The autoscaler: its ceiling above the floor, a cooldown, complete business metrics.
fn autoscaling(errors: &mut FieldErrors, spec: &ClearingAdapterSpec, autoscaling: &Autoscaling) {
    errors.check(
        spec.min_replicas() <= autoscaling.max_replicas,
        "spec.autoscaling.maxReplicas",
        format!(
            "must be at least the floor ({}), got {}",
            spec.min_replicas(),
            autoscaling.max_replicas
        ),
    );
    errors.push(
        "spec.autoscaling.cooldownPeriod",
        validation::positive_duration(&autoscaling.cooldown_period),
    );
    for (i, metric) in autoscaling.metrics.iter().enumerate() {
        let field = format!("spec.autoscaling.metrics[{i}]");
        let complete = match metric.type_.as_str() {
            "External" => metric.external.is_some(),
            "Pods" => metric.pods.is_some(),
            _ => false,
        };
        errors.check(
            complete,
            &field,
            format!(
                "must be an External or Pods metric with its block of the same name (business metrics such as pending clearing requests per pod), got type {:?}",
                metric.type_
            ),
        );
    }
}

fn partners(errors: &mut FieldErrors, partners: &[BankingPartner]) {
    errors.check(
        !partners.is_empty(),
        "spec.config.bankingPartners",
        "at least one banking partner must be configured",
    );
    let total: i64 = partners.iter().map(|p| i64::from(p.weight)).sum();
    errors.check(
        partners.is_empty() || total > 0,
        "spec.config.bankingPartners",
        "the total weight of the banking partners must be greater than 0: give at least one partner a weight",
    );
    let mut seen = BTreeSet::new();
    for (i, partner) in partners.iter().enumerate() {
        let field = |f: &str| format!("spec.config.bankingPartners[{i}].{f}");
        errors.check(
            seen.insert(partner.name.as_str()),
            &field("name"),
            format!(
                "{:?} is used by another partner: names must be unique",
                partner.name
            ),
        );
        errors.push(&field("name"), validation::resource_name(&partner.name, ""));
        errors.push(&field("endpoint"), validation::https_url(&partner.endpoint));
        errors.push(&field("endpoint"), url_credentials(&partner.endpoint));
        errors.check(
            (0..=1000).contains(&partner.weight),
            &field("weight"),
            format!("must be between 0 and 1000, got {}", partner.weight),
        );
        errors.check(
            partner.health_check_path.starts_with('/')
                && !partner.health_check_path.contains(char::is_whitespace),
            &field("healthCheckPath"),
            format!(
                "must be a path starting with /, got {:?}",
                partner.health_check_path
            ),
        );
        errors.push(
            &field("healthCheckPath"),
            url_credentials(&partner.health_check_path),
        );
        for name in partner.headers.keys() {
            let header = field(&format!("headers.{name}"));
            errors.check(
                is_token(name),
                &header,
                "must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
            );
            errors.check(
                !is_credential_name(name),
                &header,
                "looks like a credential and may not have an inline value: put the value in a Secret and reference it from auth.secretRef",
            );
        }
        if let Some(tls) = &partner.tls {
            if let Some(ca) = &tls.ca_secret_ref {
                secret_name(errors, &field("tls.caSecretRef.name"), &ca.name);
            }
            if let Some(cert) = &tls.client_certificate_secret_name {
                secret_name(errors, &field("tls.clientCertificateSecretName"), cert);
            }
        }
        if let Some(auth) = &partner.auth {
            secret_name(errors, &field("auth.secretRef.name"), &auth.secret_ref.name);
            if let Some(header) = &auth.header {
                errors.check(
                    is_token(header),
                    &field("auth.header"),
                    format!("must be an HTTP header name, got {header:?}"),
                );
            }
        }
    }
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

fn secret_name(errors: &mut FieldErrors, field: &str, name: &str) {
    errors.push(field, validation::dns_subdomain(name));
}

/// What can be observed of an adapter's load, all from its autoscaler: the CPU utilisation
/// against the target, and the pods it asks for. Without an autoscaler nothing measures load,
/// so nothing counts as high: pods still stopping after the user's own scale-down are not load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// `(current, target)` CPU utilisation in percent, from the HPA's status.
    pub cpu_utilization: Option<(i32, i32)>,
    /// The pods the autoscaler wants (`status.desiredReplicas`), when there is one.
    pub autoscaler_replicas: Option<i32>,
}

impl Load {
    /// Why the adapter counts as under high load with `floor` pods requested, if it does, with
    /// the figures: its autoscaler reports CPU above the target, or it wants more pods than
    /// the floor.
    pub fn high(&self, floor: i32) -> Option<String> {
        let cpu = self.cpu_utilization.map(|(current, target)| {
            format!("CPU at {current}% of requests against a {target}% target")
        });
        if let Some((current, target)) = self.cpu_utilization
            && current > target
        {
            return cpu.map(|cpu| format!("its autoscaler reports {cpu}"));
        }
        let wanted = self.autoscaler_replicas.filter(|&wanted| wanted > floor)?;
        Some(match cpu {
            Some(cpu) => {
                format!("its autoscaler wants {wanted} pods, above the {floor} requested ({cpu})")
            }
            None => format!("its autoscaler wants {wanted} pods, above the {floor} requested"),
        })
    }
}

/// Seed 001's `ValidateUpdate`: a change that lowers the pod floor (`replicas`, or
/// `autoscaling.minReplicas`) from `old_floor` while the adapter is under high load is
/// refused; it goes through once the load has dropped.
pub fn validate_update(old_floor: i32, new: &ClearingAdapterSpec, load: &Load) -> Vec<FieldError> {
    let floor = new.min_replicas();
    let mut errors = FieldErrors::default();
    if floor < old_floor
        && let Some(why) = load.high(old_floor)
    {
        let field = if new
            .autoscaling
            .as_ref()
            .is_some_and(|a| a.min_replicas.is_some())
        {
            "spec.autoscaling.minReplicas"
        } else {
            "spec.replicas"
        };
        errors.check(
            false,
            field,
            format!(
                "cannot scale down from {old_floor} to {floor} while the adapter is under high load ({why}); apply the change again once the load has dropped"
            ),
        );
    }
    errors.into_vec()
}

#[cfg(test)]
mod tests;
