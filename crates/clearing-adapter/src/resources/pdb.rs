//! The PodDisruptionBudget named after the adapter, when it runs more than one pod: a node
//! drain takes at most one adapter pod at a time, so clearing never stops for maintenance.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use operator_core::runtime::config::WorkloadDefaults;

use super::{labels, selector};
use crate::crd::ClearingAdapter;

pub fn desired_pdb(ca: &ClearingAdapter, defaults: &WorkloadDefaults) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(ca.name_any()),
            labels: Some(labels(ca, defaults)),
            ..ObjectMeta::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector(ca)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
