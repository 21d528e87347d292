//! One pure builder per child kind: the `ClearingAdapter`, this pass's partner weights and the
//! referenced Secrets' versions in, the desired object out. No client, no clock.

pub mod config_map;
pub mod deployment;
pub mod hpa;
pub mod network_policy;
pub mod pdb;
pub mod service;
pub mod service_monitor;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use operator_core::apply::ServedWorkload;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{Labels, instance_selector};

use crate::crd::ClearingAdapter;

/// The port that serves payments (and, by default, metrics and probes).
pub const HTTP_PORT: i32 = 8080;
/// `app.kubernetes.io/name` of every adapter pod (seed 001's label, under the product's name).
pub const APP_NAME: &str = crate::IDENTITY.app_name;

/// The adapter's ConfigMap: `<name>-config`.
pub fn config_name(adapter: &str) -> String {
    format!("{adapter}-config")
}

/// The labels that select an adapter's pods; fixed for its life (a Deployment's selector
/// cannot change), so the processor type is not among them.
pub fn selector(ca: &ClearingAdapter) -> Labels {
    instance_selector(APP_NAME, &ca.name_any())
}

/// [`selector`] as the `scale` subresource reports it.
pub fn selector_string(ca: &ClearingAdapter) -> String {
    selector(ca)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels of every child and pod: the operator's `defaultLabels`, the selector, and the
/// seed's component (the processor type) and part-of.
pub fn child_labels(ca: &ClearingAdapter, defaults: &WorkloadDefaults) -> BTreeMap<String, String> {
    let component = ca.spec.processor_type.as_str().to_string();
    let part_of = operator_core::apply::PART_OF.to_string();
    defaults.labels(selector(ca).into_iter().chain([
        ("app.kubernetes.io/component".to_string(), component),
        ("app.kubernetes.io/part-of".to_string(), part_of),
    ]))
}

/// Everything one adapter should have this pass.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredChildren {
    pub config_map: ConfigMap,
    pub workload: ServedWorkload,
}

/// What the children depend on beyond the spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Partner name → effective weight (the routing table's live part).
    pub weights: BTreeMap<String, i32>,
    /// Secret name → resourceVersion of every Secret the spec references: a rotated
    /// certificate or credential rolls the pods.
    pub secret_versions: BTreeMap<String, String>,
    /// Scale the Deployment to zero: deletion is draining the adapter.
    pub draining: bool,
}

pub fn desired_children(
    ca: &ClearingAdapter,
    inputs: &Inputs,
    defaults: &WorkloadDefaults,
    image: &str,
) -> DesiredChildren {
    let config = config_map::desired_config_map(ca, &inputs.weights, defaults);
    let config_hash = config_map::config_hash(ca, &inputs.secret_versions);
    let workload = ServedWorkload {
        deployment: deployment::desired_deployment(
            ca,
            &config_hash,
            inputs.draining,
            defaults,
            image,
        ),
        service: service::desired_service(ca, defaults),
        network_policy: network_policy::desired_network_policy(ca, defaults),
        hpa: ca
            .spec
            .autoscaling
            .as_ref()
            .filter(|_| !inputs.draining)
            .map(|a| hpa::desired_hpa(ca, a, defaults)),
        pdb: (ca.spec.min_replicas() > 1 && !inputs.draining)
            .then(|| pdb::desired_pdb(ca, defaults)),
        service_monitor: ca
            .spec
            .monitoring
            .enabled
            .then(|| service_monitor::desired_service_monitor(ca, defaults)),
    };
    DesiredChildren {
        config_map: config,
        workload,
    }
}

#[cfg(test)]
mod tests;
