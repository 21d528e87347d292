//! The HorizontalPodAutoscaler named after the orchestrator, when `autoscaling` is set: its
//! Deployment between `minReplicas` and `maxReplicas` on CPU.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{Scaling, deployment_autoscaler, utilization};

use super::meta;
use crate::crd::SagaOrchestrator;

pub fn desired_hpa(
    so: &SagaOrchestrator,
    defaults: &WorkloadDefaults,
) -> Option<HorizontalPodAutoscaler> {
    let autoscaling = so.spec.autoscaling.as_ref()?;
    let scaling = Scaling {
        min_replicas: autoscaling.min_replicas,
        max_replicas: autoscaling.max_replicas,
        metrics: vec![utilization("cpu", autoscaling.target_cpu)],
        behavior: None,
    };
    let name = so.name_any();
    Some(deployment_autoscaler(
        meta(name.clone(), so, defaults),
        name,
        scaling,
    ))
}
