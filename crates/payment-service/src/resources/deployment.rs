//! The service's Deployments, as seed 000's `constructDeployment`: labels `app` and `version`,
//! ports http 8080 and metrics, the seed's environment variables, prometheus scrape
//! annotations, probes from `healthCheck`, the service account from `security.rbac`, the TLS
//! Secret mounted when `security.tls` is on, and restricted pod security.
//!
//! Each track has its own selector (`app` plus `payments.io/track`), so a canary or the idle
//! colour never adopts the stable pods. When autoscaling is on, `replicas` is left to the
//! autoscaler.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use operator_core::apply::short_digest;
use operator_core::builder::{self, WorkloadDefaults};
use operator_core::builder::{
    container_port, deployment, deployment_spec, env, meta, pod_template, read_only_mount,
    resource_requests, rolling_update, tmp_mount, tmp_volume,
};
use operator_core::pod_security::restricted_container_security;

use super::{DEFAULT_METRICS_PORT, External, HTTP_PORT, TRACK_LABEL, child_labels};
use crate::crd::{HttpProbe, PaymentService};
use crate::rollout::{Replicas, Workload};

/// The service container's name.
pub const CONTAINER: &str = "payment-service";
/// Where the TLS Secret is mounted.
pub const TLS_MOUNT: &str = "/etc/payments/tls";

/// Seed 000's `constructEnvVars`, for the fields that are set (a variable with no value
/// would override the service's own default with an empty string).
/// What a service gets when neither its spec nor the operator's config (`paymentService.
/// defaultResources`) names resources: a pod without requests is scheduled anywhere and
/// evicted first. Documented in docs/payment-service.md.
pub fn fallback_resources() -> ResourceRequirements {
    resource_requests("250m", "512Mi", &[("memory", "1Gi")])
}

pub fn service_env(ps: &PaymentService) -> Vec<EnvVar> {
    let spec = &ps.spec;
    let config = spec.config.clone().unwrap_or_default();
    let mut vars = vec![env("SPRING_PROFILES_ACTIVE", "kubernetes")];
    if let Some(db) = &config.database {
        vars.push(env("DB_CLUSTER_NAME", &db.cluster_name));
        if let Some(pool) = db.pool_size {
            vars.push(env("DB_POOL_SIZE", pool.to_string()));
        }
    }
    if let Some(m) = &config.messaging {
        vars.push(env("SERVICE_BUS_NAMESPACE", &m.service_bus_namespace));
        vars.push(env("SERVICE_BUS_QUEUE", &m.queue_name));
    }
    if let Some(r) = &config.redis {
        vars.push(env("REDIS_CLUSTER", &r.cluster_name));
    }
    let features = config.features.unwrap_or_default();
    vars.push(env(
        "ENABLE_IDEMPOTENCY_CHECK",
        features.enable_idempotency_check.to_string(),
    ));
    vars.push(env(
        "ENABLE_FRAUD_DETECTION",
        features.enable_fraud_detection.to_string(),
    ));
    vars.push(env(
        "ENABLE_RATE_LIMITING",
        features.enable_rate_limiting.to_string(),
    ));
    if let Some(rate) = features.rate_limit_per_second {
        vars.push(env("RATE_LIMIT_PER_SECOND", rate.to_string()));
    }
    if let Some(t) = spec.tracing() {
        if let Some(endpoint) = &t.jaeger_endpoint {
            vars.push(env("JAEGER_ENDPOINT", endpoint));
        }
        vars.push(env(
            "JAEGER_SAMPLING_RATE",
            format!("{:.2}", t.sampling_rate.unwrap_or(0.1)),
        ));
    }
    if spec.tls_secret().is_some() {
        vars.push(env("TLS_CERT_FILE", format!("{TLS_MOUNT}/tls.crt")));
        vars.push(env("TLS_KEY_FILE", format!("{TLS_MOUNT}/tls.key")));
    }
    vars
}

/// A short hash of the pods' configuration: the environment and the TLS Secret's version.
pub fn config_hash(env: &[EnvVar], external: &External) -> String {
    let vars = env.iter().flat_map(|var| {
        [
            var.name.as_bytes(),
            var.value.as_deref().unwrap_or_default().as_bytes(),
        ]
    });
    let tls = external
        .tls_secret_version
        .iter()
        .flat_map(|version| [b"tls".as_slice(), version.as_bytes()]);
    short_digest(vars.chain(tls))
}

/// The Deployment for one workload of the rollout plan.
pub fn desired_deployment(
    ps: &PaymentService,
    workload: &Workload,
    defaults: &WorkloadDefaults,
    external: &External,
) -> Deployment {
    let spec = &ps.spec;
    let name = ps.name_any();
    let version = &workload.revision.version;

    let selector = BTreeMap::from([
        ("app".to_string(), name.clone()),
        (TRACK_LABEL.to_string(), workload.track.label().to_string()),
    ]);
    let mut labels = child_labels(ps, defaults);
    labels.insert("version".into(), version.clone());
    let mut pod_labels = labels.clone();
    pod_labels.extend(selector.clone());
    if spec.mtls() {
        pod_labels.insert("sidecar.istio.io/inject".into(), "true".into());
    }

    let env = service_env(ps);
    let mut pod_annotations = builder::config_hash(config_hash(&env, external));
    let metrics_port = spec.prometheus().map_or(DEFAULT_METRICS_PORT, |p| p.port);
    if let Some(p) = spec.prometheus() {
        pod_annotations.insert("prometheus.io/scrape".into(), "true".into());
        pod_annotations.insert("prometheus.io/port".into(), p.port.to_string());
        pod_annotations.insert("prometheus.io/path".into(), p.path.clone());
    }

    let mut mounts = vec![tmp_mount()];
    let mut volumes = vec![tmp_volume()];
    if let Some(secret) = spec.tls_secret() {
        mounts.push(read_only_mount("tls", TLS_MOUNT));
        volumes.push(builder::secret_volume("tls", secret, 0o440));
    }

    let health = spec.health_check.clone().unwrap_or_default();
    let container = Container {
        name: CONTAINER.into(),
        image: Some(workload.revision.image.clone()),
        ports: Some(vec![
            container_port("http", HTTP_PORT),
            container_port("metrics", metrics_port),
        ]),
        env: Some(env),
        resources: Some(defaults.resources(spec.resources.as_ref(), fallback_resources)),
        liveness_probe: health.liveness.as_ref().map(HttpProbe::probe),
        readiness_probe: health.readiness.as_ref().map(HttpProbe::probe),
        security_context: Some(restricted_container_security()),
        volume_mounts: Some(mounts),
        ..Container::default()
    };

    let pod = PodSpec {
        containers: vec![container],
        service_account_name: spec.service_account(&name),
        // The service does not talk to the Kubernetes API.
        automount_service_account_token: Some(false),
        security_context: Some(defaults.pod_security()),
        volumes: Some(volumes),
        ..PodSpec::default()
    };
    let replicas = match workload.replicas {
        Replicas::Fixed(n) => Some(n),
        Replicas::Autoscaled => None,
    };
    // New pods come up before old ones go: a payment service never drops below its replica
    // count during a rollout.
    let strategy = rolling_update(spec.max_surge(), IntOrString::Int(0));
    let template = pod_template(pod_labels, pod_annotations, pod);
    deployment(
        meta(workload.track.deployment_name(&name), labels),
        DeploymentSpec {
            progress_deadline_seconds: Some(spec.progress_deadline_seconds()),
            revision_history_limit: Some(5),
            ..deployment_spec(replicas, selector, Some(strategy), template)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Color, Revision};
    use crate::resources::tests::{service, spec};
    use crate::rollout::Track;

    fn workload(track: Track, replicas: Replicas) -> Workload {
        Workload {
            track,
            revision: Revision {
                version: "1.5.0".into(),
                image: "acr.azurecr.io/payment-initiation-service:1.5.0".into(),
            },
            replicas,
        }
    }

    #[test]
    fn a_rolling_update_surges_as_the_spec_says_and_never_goes_below_the_count() {
        let surge = |spec: crate::crd::PaymentServiceSpec| {
            let d = desired_deployment(
                &service(spec),
                &workload(Track::Stable, Replicas::Fixed(4)),
                &WorkloadDefaults::default(),
                &External::default(),
            );
            let rolling = d
                .spec
                .and_then(|s| s.strategy)
                .and_then(|s| s.rolling_update)
                .unwrap_or_default();
            (rolling.max_surge, rolling.max_unavailable)
        };
        let mut s = spec();
        s.deployment_strategy = Some(crate::crd::DeploymentStrategy {
            rolling_update: Some(crate::crd::RollingUpdate {
                max_surge: Some(IntOrString::Int(2)),
            }),
            ..Default::default()
        });
        assert_eq!(
            surge(s),
            (Some(IntOrString::Int(2)), Some(IntOrString::Int(0)))
        );
        assert_eq!(
            surge(spec()),
            (
                Some(IntOrString::String("25%".into())),
                Some(IntOrString::Int(0))
            ),
            "25% when the spec says nothing (a blue-green spec here)"
        );
    }

    fn build(track: Track, replicas: Replicas) -> Deployment {
        desired_deployment(
            &service(spec()),
            &workload(track, replicas),
            &WorkloadDefaults::default(),
            &External {
                tls_secret_version: Some("42".into()),
            },
        )
    }

    fn pod(d: &Deployment) -> PodSpec {
        d.spec
            .clone()
            .unwrap_or_default()
            .template
            .spec
            .unwrap_or_default()
    }

    #[test]
    fn a_service_that_names_no_resources_gets_the_operators_defaults() {
        let mut bare = spec();
        bare.resources = None;
        let d = desired_deployment(
            &service(bare),
            &workload(Track::Stable, Replicas::Autoscaled),
            &WorkloadDefaults::default(),
            &External::default(),
        );
        let resources = pod(&d).containers[0].resources.clone().unwrap_or_default();
        assert_eq!(resources, fallback_resources());
        assert!(resources.requests.is_some_and(|r| r.contains_key("memory")));
    }

    #[test]
    fn carries_the_seeds_environment_ports_probes_and_annotations() {
        let d = build(Track::Stable, Replicas::Autoscaled);
        assert_eq!(
            d.metadata.name.as_deref(),
            Some("payment-initiation-service")
        );
        for (name, value) in [
            ("SPRING_PROFILES_ACTIVE", "kubernetes"),
            ("DB_CLUSTER_NAME", "payment-initiation-db"),
            ("DB_POOL_SIZE", "20"),
            ("SERVICE_BUS_NAMESPACE", "payments-servicebus"),
            ("SERVICE_BUS_QUEUE", "payment-processing-queue"),
            ("REDIS_CLUSTER", "idempotency-store"),
            ("ENABLE_IDEMPOTENCY_CHECK", "true"),
            ("ENABLE_FRAUD_DETECTION", "true"),
            ("RATE_LIMIT_PER_SECOND", "1000"),
            (
                "JAEGER_ENDPOINT",
                "http://jaeger-collector.istio-system:14268/api/traces",
            ),
            ("JAEGER_SAMPLING_RATE", "0.10"),
        ] {
            assert_eq!(
                operator_harness::env_value(&d, name).as_deref(),
                Some(value),
                "{name}"
            );
        }
        let c = &pod(&d).containers[0];
        let ports: Vec<_> = c
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
            .collect();
        assert_eq!(
            ports,
            vec![("http".to_string(), 8080), ("metrics".to_string(), 8081)]
        );
        let readiness = c.readiness_probe.clone().unwrap_or_default();
        assert_eq!(readiness.initial_delay_seconds, Some(30));
        assert_eq!(
            readiness.http_get.and_then(|h| h.path).as_deref(),
            Some("/actuator/health/readiness")
        );
        let template = d
            .spec
            .clone()
            .unwrap_or_default()
            .template
            .metadata
            .unwrap_or_default();
        let annotations = template.annotations.unwrap_or_default();
        assert_eq!(annotations["prometheus.io/port"], "8081");
        assert_eq!(annotations["prometheus.io/path"], "/actuator/prometheus");
        let labels = template.labels.unwrap_or_default();
        assert_eq!(labels["version"], "1.5.0");
        assert_eq!(labels["sidecar.istio.io/inject"], "true");
        assert_eq!(
            pod(&d).service_account_name.as_deref(),
            Some("payment-gateway-sa")
        );
    }

    #[test]
    fn autoscaled_deployments_leave_replicas_to_the_autoscaler() {
        assert_eq!(
            build(Track::Stable, Replicas::Autoscaled)
                .spec
                .and_then(|s| s.replicas),
            None
        );
        assert_eq!(
            build(Track::Canary, Replicas::Fixed(2))
                .spec
                .and_then(|s| s.replicas),
            Some(2)
        );
    }

    #[test]
    fn each_track_selects_only_its_own_pods() {
        let green = build(Track::Color(Color::Green), Replicas::Fixed(3));
        assert_eq!(
            green.metadata.name.as_deref(),
            Some("payment-initiation-service-green")
        );
        let selector = green
            .spec
            .unwrap_or_default()
            .selector
            .match_labels
            .unwrap_or_default();
        assert_eq!(selector.get(TRACK_LABEL).map(String::as_str), Some("green"));
        assert_eq!(selector["app"], "payment-initiation-service");
    }

    #[test]
    fn pods_run_restricted_with_the_tls_secret_mounted_read_only() {
        let d = build(Track::Stable, Replicas::Fixed(3));
        let p = pod(&d);
        assert_eq!(p.automount_service_account_token, Some(false));
        let sc = p.containers[0].security_context.clone().unwrap_or_default();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        let tls = p
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "tls")
            .and_then(|v| v.secret.clone())
            .and_then(|s| s.secret_name);
        assert_eq!(tls.as_deref(), Some("payment-gateway-tls"));
        let mount = p.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "tls")
            .cloned()
            .unwrap_or_default();
        assert_eq!(mount.read_only, Some(true));
        let serialized = serde_json::to_string(&d).unwrap_or_default();
        assert!(
            !serialized.contains("tls.key\":"),
            "secret data never in the spec"
        );
    }

    #[test]
    fn a_config_change_or_a_rotated_certificate_changes_the_pod_template() {
        let ps = service(spec());
        let base = config_hash(
            &service_env(&ps),
            &External {
                tls_secret_version: Some("1".into()),
            },
        );
        let rotated = config_hash(
            &service_env(&ps),
            &External {
                tls_secret_version: Some("2".into()),
            },
        );
        let mut changed = spec();
        if let Some(f) = changed.config.as_mut().and_then(|c| c.features.as_mut()) {
            f.rate_limit_per_second = Some(2000);
        }
        let reconfigured = config_hash(
            &service_env(&service(changed)),
            &External {
                tls_secret_version: Some("1".into()),
            },
        );
        assert_ne!(base, rotated);
        assert_ne!(base, reconfigured);
    }
}
