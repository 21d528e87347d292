//! The HorizontalPodAutoscaler (autoscaling/v2) named after the service, scaling the serving
//! Deployment between `minReplicas` and `maxReplicas` on CPU, memory and the spec's own
//! metrics (e.g. the seed's External queue-length metric).

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{Scaling, deployment_autoscaler, meta, scaling_metrics};

use super::child_labels;
use crate::crd::{Autoscaling, PaymentService};

/// `target` is the Deployment the rollout plan has serving (for BlueGreen, the active colour).
pub fn desired_hpa(
    ps: &PaymentService,
    autoscaling: &Autoscaling,
    target: &str,
    defaults: &WorkloadDefaults,
) -> HorizontalPodAutoscaler {
    let metrics = scaling_metrics(
        autoscaling.target_cpu_utilization_percentage,
        autoscaling.target_memory_utilization_percentage,
        &autoscaling.metrics,
    );
    let scaling = Scaling {
        min_replicas: ps.spec.min_replicas(),
        max_replicas: autoscaling.max_replicas,
        metrics,
        behavior: None,
    };
    deployment_autoscaler(
        meta(ps.name_any(), child_labels(ps, defaults)),
        target,
        scaling,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::{service, spec};

    #[test]
    fn scales_on_cpu_memory_and_the_external_queue_length() {
        let ps = service(spec());
        let a = ps.spec.autoscaling().cloned().unwrap_or_default();
        let hpa = desired_hpa(
            &ps,
            &a,
            "payment-initiation-service-blue",
            &WorkloadDefaults::default(),
        );
        let spec = hpa.spec.unwrap_or_default();
        assert_eq!(
            spec.scale_target_ref.name,
            "payment-initiation-service-blue"
        );
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(3), 20));
        let types: Vec<_> = spec
            .metrics
            .unwrap_or_default()
            .iter()
            .map(|m| {
                m.resource
                    .as_ref()
                    .map(|r| r.name.clone())
                    .or_else(|| m.external.as_ref().map(|e| e.metric.name.clone()))
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            types,
            vec!["cpu", "memory", "azure_service_bus_queue_length"]
        );
    }

    /// Seed 000 scales "manually" with `replicas` while autoscaling is on: the floor rises
    /// to it (never past `maxReplicas`) and falls back to `minReplicas` when it is lowered.
    #[test]
    fn replicas_above_the_autoscalers_minimum_raise_its_floor() {
        let floor = |replicas: i32| {
            let mut spec = spec();
            spec.replicas = replicas;
            let ps = service(spec);
            let a = ps.spec.autoscaling().cloned().unwrap_or_default();
            let hpa = desired_hpa(&ps, &a, "pay", &WorkloadDefaults::default());
            hpa.spec.unwrap_or_default().min_replicas
        };
        assert_eq!(floor(10), Some(10));
        assert_eq!(floor(3), Some(3));
        assert_eq!(floor(1), Some(3), "minReplicas stays the floor");
        assert_eq!(floor(50), Some(20), "never past maxReplicas");
    }
}
