//! The NetworkPolicy named after the orchestrator: its API port from anywhere in the
//! cluster, its metrics port from the monitoring namespace only.

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::network_policy::{Ingress, ingress_policy};

use super::{HTTP_PORT, child_labels, selector};
use crate::crd::SagaOrchestrator;

pub fn desired_network_policy(so: &SagaOrchestrator, defaults: &WorkloadDefaults) -> NetworkPolicy {
    let prometheus = &so.spec.monitoring.prometheus;
    let ingress = Ingress {
        pods: selector(so),
        serving_ports: &[HTTP_PORT],
        metrics_port: prometheus.enabled.then_some(prometheus.port),
        monitoring_namespace: defaults.monitoring_namespace(),
    };
    let mut policy = ingress_policy(so.name_any(), &ingress);
    policy.metadata.labels = Some(child_labels(so, defaults));
    policy
}
