//! One pure builder per child kind: the `SagaOrchestrator`, this pass's definition plan and
//! the persistence Secret's version in, the desired object out. No client, no clock.

pub mod config_map;
pub mod deployment;
pub mod hpa;
pub mod network_policy;
pub mod pdb;
pub mod rbac;
pub mod service;
pub mod service_monitor;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use operator_core::apply::ServedWorkload;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{self, Labels, instance_selector};

use crate::crd::SagaOrchestrator;
use crate::definitions::DefinitionPlan;

/// The orchestrator's API port.
pub const HTTP_PORT: i32 = 8080;
/// `app.kubernetes.io/name` of the orchestrator's pods.
pub const APP_NAME: &str = crate::IDENTITY.app_name;

pub fn sagas_name(orchestrator: &str) -> String {
    format!("{orchestrator}-sagas")
}

pub fn in_flight_name(orchestrator: &str) -> String {
    format!("{orchestrator}-inflight")
}

/// The labels that select the orchestrator's pods (fixed for its life).
pub fn selector(so: &SagaOrchestrator) -> Labels {
    instance_selector(APP_NAME, &so.name_any())
}

/// Labels of every child and pod: the operator's `defaultLabels`, the selector, the version.
pub fn child_labels(
    so: &SagaOrchestrator,
    defaults: &WorkloadDefaults,
) -> BTreeMap<String, String> {
    let version = (
        "app.kubernetes.io/version".to_string(),
        so.spec.version.clone(),
    );
    defaults.labels(selector(so).into_iter().chain([version]))
}

fn meta(name: String, so: &SagaOrchestrator, defaults: &WorkloadDefaults) -> ObjectMeta {
    builder::meta(name, child_labels(so, defaults))
}

/// Everything one orchestrator should have this pass.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredChildren {
    pub sagas: ConfigMap,
    pub in_flight: ConfigMap,
    pub service_account: ServiceAccount,
    pub role: Role,
    pub role_binding: RoleBinding,
    pub workload: ServedWorkload,
}

pub fn desired_children(
    so: &SagaOrchestrator,
    plan: &DefinitionPlan,
    secret_version: &str,
    defaults: &WorkloadDefaults,
) -> DesiredChildren {
    let (account, role, role_binding) = rbac::desired_rbac(so, defaults);
    DesiredChildren {
        sagas: config_map::desired_sagas(so, plan, defaults),
        in_flight: config_map::desired_in_flight(so, defaults),
        service_account: account,
        role,
        role_binding,
        workload: ServedWorkload {
            deployment: deployment::desired_deployment(so, plan, secret_version, defaults),
            service: service::desired_service(so, defaults),
            network_policy: network_policy::desired_network_policy(so, defaults),
            hpa: hpa::desired_hpa(so, defaults),
            pdb: pdb::desired_pdb(so, defaults),
            service_monitor: service_monitor::desired_service_monitor(so, defaults),
        },
    }
}

/// The fewest pods the orchestrator runs.
pub fn floor(so: &SagaOrchestrator) -> i32 {
    so.spec
        .autoscaling
        .as_ref()
        .map_or(so.spec.replicas, |a| a.min_replicas)
}

#[cfg(test)]
mod tests;
