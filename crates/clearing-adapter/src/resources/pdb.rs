//! The PodDisruptionBudget named after the adapter, when it runs more than one pod: a node
//! drain takes at most one adapter pod at a time, so clearing never stops for maintenance.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{meta, one_pod_at_a_time};

use super::{child_labels, selector};
use crate::crd::ClearingAdapter;

pub fn desired_pdb(ca: &ClearingAdapter, defaults: &WorkloadDefaults) -> PodDisruptionBudget {
    one_pod_at_a_time(
        meta(ca.name_any(), child_labels(ca, defaults)),
        selector(ca),
    )
}
