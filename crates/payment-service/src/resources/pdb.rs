//! The PodDisruptionBudget named after the service, when it runs more than one replica: a
//! drain or node upgrade takes at most one pod of the service at a time.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{meta, one_pod_at_a_time};

use super::{child_labels, selector};
use crate::crd::PaymentService;

pub fn desired_pdb(ps: &PaymentService, defaults: &WorkloadDefaults) -> PodDisruptionBudget {
    one_pod_at_a_time(
        meta(ps.name_any(), child_labels(ps, defaults)),
        selector(ps),
    )
}
