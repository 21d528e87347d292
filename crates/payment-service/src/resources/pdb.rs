//! The PodDisruptionBudget named after the service, when it runs more than one replica: a
//! drain or node upgrade takes at most one pod of the service at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use operator_core::runtime::config::WorkloadDefaults;

use super::{app_selector, child_labels};
use crate::crd::PaymentService;

pub fn desired_pdb(ps: &PaymentService, defaults: &WorkloadDefaults) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(ps.name_any()),
            labels: Some(child_labels(ps, defaults)),
            ..ObjectMeta::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(app_selector(ps)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
