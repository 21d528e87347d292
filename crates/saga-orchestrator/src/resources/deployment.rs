//! The orchestrator's Deployment: its image and version, the sagas ConfigMap mounted where it
//! reads definitions, persistence by reference (host from the cluster's name, credentials
//! from the Secret, never copied), its own ServiceAccount (for `<name>-inflight`), restricted
//! security, and a config hash of the current definitions and the Secret's version — a new
//! definition version or rotated credentials roll the pods; dropping an old version does not.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec, ResourceRequirements,
};
use kube::ResourceExt;
use operator_core::apply::short_digest;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{
    config_hash, config_map_volume, container_port, deployment, deployment_spec, env,
    env_from_secret, meta, pod_template, read_only_mount, resource_requests, tmp_mount, tmp_volume,
};
use operator_core::pod_security::restricted_container_security;
use operator_core::probes::tcp_probe;

use super::{HTTP_PORT, child_labels, in_flight_name, sagas_name, selector};
use crate::crd::{PersistenceType, SagaOrchestrator};
use crate::definitions::DefinitionPlan;

pub const CONTAINER: &str = "orchestrator";
/// Where the sagas ConfigMap is mounted.
pub const DEFINITIONS_MOUNT: &str = "/etc/saga/definitions";

/// What an orchestrator gets when neither its spec nor the operator's config names resources.
pub fn fallback_resources() -> ResourceRequirements {
    resource_requests("250m", "256Mi", &[("memory", "512Mi")])
}

pub fn orchestrator_env(so: &SagaOrchestrator) -> Vec<EnvVar> {
    let name = so.name_any();
    let p = &so.spec.persistence;
    let (kind, host) = match p.type_ {
        PersistenceType::Postgresql => ("postgresql", format!("{}-rw", p.cluster_name)),
        PersistenceType::Redis => ("redis", p.cluster_name.clone()),
    };
    vec![
        EnvVar {
            name: "POD_NAMESPACE".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.namespace".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
        },
        env(
            "SAGA_DEFINITIONS",
            format!("{DEFINITIONS_MOUNT}/index.json"),
        ),
        env("SAGA_INFLIGHT_CONFIGMAP", in_flight_name(&name)),
        env("PERSISTENCE_TYPE", kind),
        env("PERSISTENCE_HOST", host),
        env_from_secret("PERSISTENCE_USERNAME", &p.secret_name, "username", true),
        env_from_secret("PERSISTENCE_PASSWORD", &p.secret_name, "password", false),
        env(
            "METRICS_PORT",
            so.spec.monitoring.prometheus.port.to_string(),
        ),
    ]
}

pub fn desired_deployment(
    so: &SagaOrchestrator,
    plan: &DefinitionPlan,
    secret_version: &str,
    defaults: &WorkloadDefaults,
) -> Deployment {
    let name = so.name_any();
    let spec = &so.spec;
    let labels = child_labels(so, defaults);
    let hash = short_digest([plan.active_digest().as_bytes(), secret_version.as_bytes()]);
    let mut ports = vec![container_port("http", HTTP_PORT)];
    if spec.monitoring.prometheus.enabled {
        ports.push(container_port("metrics", spec.monitoring.prometheus.port));
    }
    let resources = defaults.resources(spec.resources.as_ref(), fallback_resources);
    let pod = PodSpec {
        service_account_name: Some(name.clone()),
        // The token writes `<name>-inflight`, the one thing its Role allows.
        automount_service_account_token: Some(true),
        containers: vec![Container {
            name: CONTAINER.into(),
            image: Some(spec.image.clone()),
            ports: Some(ports),
            env: Some(orchestrator_env(so)),
            resources: Some(resources),
            readiness_probe: Some(tcp_probe(HTTP_PORT, 5, 5)),
            liveness_probe: Some(tcp_probe(HTTP_PORT, 30, 10)),
            volume_mounts: Some(vec![
                read_only_mount("definitions", DEFINITIONS_MOUNT),
                tmp_mount(),
            ]),
            security_context: Some(restricted_container_security()),
            ..Container::default()
        }],
        volumes: Some(vec![
            config_map_volume("definitions", sagas_name(&name)),
            tmp_volume(),
        ]),
        security_context: Some(defaults.pod_security()),
        ..PodSpec::default()
    };
    let replicas = spec.autoscaling.is_none().then_some(spec.replicas);
    let template = pod_template(labels.clone(), config_hash(hash), pod);
    deployment(
        meta(name, labels),
        deployment_spec(replicas, selector(so), None, template),
    )
}
