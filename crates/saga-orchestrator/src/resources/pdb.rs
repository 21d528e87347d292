//! The PodDisruptionBudget named after the orchestrator, when it runs more than one pod: a
//! node drain takes one at a time, so sagas in flight always have an orchestrator.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::one_pod_at_a_time;

use super::{floor, meta, selector};
use crate::crd::SagaOrchestrator;

pub fn desired_pdb(
    so: &SagaOrchestrator,
    defaults: &WorkloadDefaults,
) -> Option<PodDisruptionBudget> {
    (floor(so) > 1).then(|| one_pod_at_a_time(meta(so.name_any(), so, defaults), selector(so)))
}
