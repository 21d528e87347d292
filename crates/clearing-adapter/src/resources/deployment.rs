//! The adapter's Deployment, as seed 001's `BuildDeployment`: the seed's labels, env, probes
//! `<healthCheckPath>/live` and `/ready`, the config and secret volumes, preferred
//! anti-affinity by host and a spread over zones when it runs more than one pod, a rolling
//! update of 25%/25%, and restricted pod security. The pod template's config-hash changes with
//! `adapter.json` and the referenced Secrets' versions, so a rotated partner certificate
//! rolls the pods; the weights are not in it (the adapter reloads them).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvVar, HTTPGetAction, KeyToPath, PodAffinityTerm, PodAntiAffinity,
    PodSpec, Probe, ProjectedVolumeSource, SecretProjection, TopologySpreadConstraint, Volume,
    VolumeProjection, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use operator_core::builder::{self, WorkloadDefaults};
use operator_core::builder::{
    config_map_volume, container_port, deployment, deployment_spec, env, env_from_field, meta,
    pod_template, read_only_mount, rolling_update, tmp_mount, tmp_volume,
};
use operator_core::pod_security::restricted_container_security;

use super::{HTTP_PORT, child_labels, config_name, selector};
use crate::crd::ClearingAdapter;

/// The adapter container's name.
pub const CONTAINER: &str = "clearing-adapter";
/// Where `<name>-config` is mounted.
pub const CONFIG_MOUNT: &str = "/etc/clearing-adapter/config";
/// Where the referenced Secrets' keys are mounted, as `<secret>/<key>`.
pub const SECRETS_MOUNT: &str = "/etc/clearing-adapter/secrets";

/// Seed 001's `buildEnvironmentVariables`, and where the config file is.
pub fn adapter_env(ca: &ClearingAdapter) -> Vec<EnvVar> {
    let spec = &ca.spec;
    let breaker = &spec.circuit_breaker;
    let mut vars = vec![
        env("PROCESSOR_TYPE", spec.processor_type.as_str()),
        env("TIMEOUT", spec.config.timeout.as_str()),
        env_from_field("POD_NAME", "metadata.name"),
        env_from_field("POD_NAMESPACE", "metadata.namespace"),
        env_from_field("POD_IP", "status.podIP"),
        env(
            "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
            breaker.failure_threshold.to_string(),
        ),
        env(
            "CIRCUIT_BREAKER_SUCCESS_THRESHOLD",
            breaker.success_threshold.to_string(),
        ),
        env("CIRCUIT_BREAKER_TIMEOUT", breaker.timeout.as_str()),
    ];
    if let Some(limit) = &spec.config.rate_limit {
        vars.push(env("RATE_LIMIT_RPS", limit.requests_per_second.to_string()));
        vars.push(env("RATE_LIMIT_BURST", limit.burst_size.to_string()));
    }
    vars.push(env(
        "ADAPTER_CONFIG",
        format!("{CONFIG_MOUNT}/adapter.json"),
    ));
    vars.push(env(
        "METRICS_PORT",
        spec.monitoring.metrics_port.to_string(),
    ));
    vars
}

fn http_probe(path: String, delay: i32, period: i32, timeout: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path),
            port: IntOrString::Int(HTTP_PORT),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(delay),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// The referenced Secrets' keys, projected into one volume as `<secret>/<key>`.
fn secrets_volume(ca: &ClearingAdapter) -> Option<Volume> {
    let mut by_secret: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for used in ca.spec.secret_uses() {
        by_secret
            .entry(used.secret.name)
            .or_default()
            .insert(used.secret.key);
    }
    if by_secret.is_empty() {
        return None;
    }
    let sources = by_secret
        .into_iter()
        .map(|(name, keys)| VolumeProjection {
            secret: Some(SecretProjection {
                items: Some(
                    keys.into_iter()
                        .map(|key| KeyToPath {
                            path: format!("{name}/{key}"),
                            key,
                            mode: None,
                        })
                        .collect(),
                ),
                name: name.clone(),
                optional: Some(false),
            }),
            ..VolumeProjection::default()
        })
        .collect();
    Some(Volume {
        name: "secrets".into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            default_mode: Some(0o440),
        }),
        ..Volume::default()
    })
}

fn spread(ca: &ClearingAdapter) -> (Option<Affinity>, Option<Vec<TopologySpreadConstraint>>) {
    if ca.spec.replicas <= 1 && ca.spec.autoscaling.is_none() {
        return (None, None);
    }
    let pods = LabelSelector {
        match_labels: Some(selector(ca)),
        ..LabelSelector::default()
    };
    let affinity = Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(pods.clone()),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    };
    let zones = TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "topology.kubernetes.io/zone".into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(pods),
        ..TopologySpreadConstraint::default()
    };
    (Some(affinity), Some(vec![zones]))
}

/// `draining`: deletion is under way, no pod takes new payments.
pub fn desired_deployment(
    ca: &ClearingAdapter,
    config_hash: &str,
    draining: bool,
    defaults: &WorkloadDefaults,
    image: &str,
) -> Deployment {
    let spec = &ca.spec;
    let labels = child_labels(ca, defaults);
    let health = spec.monitoring.health_check_path.trim_end_matches('/');
    let mut ports = vec![container_port("http", HTTP_PORT)];
    if spec.monitoring.metrics_port != HTTP_PORT {
        ports.push(container_port("metrics", spec.monitoring.metrics_port));
    }
    let mut mounts = vec![read_only_mount("config", CONFIG_MOUNT), tmp_mount()];
    let mut volumes = vec![
        config_map_volume("config", config_name(&ca.name_any())),
        tmp_volume(),
    ];
    if let Some(secrets) = secrets_volume(ca) {
        mounts.push(read_only_mount("secrets", SECRETS_MOUNT));
        volumes.push(secrets);
    }
    let mut pod_security = defaults.pod_security();
    if let Some(own) = &spec.security_context {
        pod_security.run_as_user = own.run_as_user.or(pod_security.run_as_user);
        pod_security.run_as_group = own.run_as_group.or(pod_security.run_as_group);
        pod_security.fs_group = own.fs_group.or(pod_security.fs_group);
    }
    let drain_seconds = spec.drain_timeout.or(Duration::from_secs(30)).as_secs() as i64;
    let (affinity, topology_spread_constraints) = spread(ca);
    let replicas = if draining {
        Some(0)
    } else if spec.autoscaling.is_some() {
        None
    } else {
        Some(spec.replicas)
    };
    let mut annotations = builder::config_hash(config_hash);
    annotations.extend([
        (
            "prometheus.io/scrape".to_string(),
            spec.monitoring.enabled.to_string(),
        ),
        (
            "prometheus.io/port".to_string(),
            spec.monitoring.metrics_port.to_string(),
        ),
        ("prometheus.io/path".to_string(), "/metrics".to_string()),
    ]);
    let pod = PodSpec {
        containers: vec![Container {
            name: CONTAINER.into(),
            image: Some(image.into()),
            ports: Some(ports),
            env: Some(adapter_env(ca)),
            resources: Some(spec.resources.clone()),
            liveness_probe: Some(http_probe(format!("{health}/live"), 30, 10, 5)),
            readiness_probe: Some(http_probe(format!("{health}/ready"), 5, 5, 3)),
            volume_mounts: Some(mounts),
            security_context: Some(restricted_container_security()),
            ..Container::default()
        }],
        volumes: Some(volumes),
        security_context: Some(pod_security),
        automount_service_account_token: Some(false),
        // The pods finish in-flight payments within the drain timeout.
        termination_grace_period_seconds: Some(drain_seconds.max(30) + 5),
        affinity,
        topology_spread_constraints,
        ..PodSpec::default()
    };
    let metadata = ObjectMeta {
        annotations: Some(BTreeMap::from([(
            "payments.io/processor-type".to_string(),
            spec.processor_type.as_str().to_string(),
        )])),
        ..meta(ca.name_any(), labels.clone())
    };
    let quarter = || IntOrString::String("25%".into());
    let strategy = rolling_update(quarter(), quarter());
    let template = pod_template(labels, annotations, pod);
    deployment(
        metadata,
        deployment_spec(replicas, selector(ca), Some(strategy), template),
    )
}
