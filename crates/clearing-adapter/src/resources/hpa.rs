//! The HorizontalPodAutoscaler named after the adapter: seed 001's `BusinessMetricsScaler`
//! expressed as autoscaling/v2. Its scaling policies are the `metrics` (External or Pods,
//! e.g. pending clearing requests per pod, beside CPU); its cooldown is the scale-down
//! stabilization window, so a dip in load shorter than the cooldown removes no pod; scale-up
//! is immediate, at most doubling the pods per minute (the seed's scale factor of 2).

use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior,
};
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{Scaling, deployment_autoscaler, meta, scaling_metrics};

use super::child_labels;
use crate::crd::{Autoscaling, ClearingAdapter};

/// The longest window the API server accepts (one hour).
const MAX_STABILIZATION_SECONDS: u64 = 3600;

pub fn desired_hpa(
    ca: &ClearingAdapter,
    autoscaling: &Autoscaling,
    defaults: &WorkloadDefaults,
) -> HorizontalPodAutoscaler {
    let cpu = autoscaling.target_cpu_utilization_percentage;
    let metrics = scaling_metrics(cpu, None, &autoscaling.metrics);
    let cooldown = autoscaling
        .cooldown_period
        .or(Duration::from_secs(300))
        .as_secs()
        .min(MAX_STABILIZATION_SECONDS);
    let scaling = Scaling {
        min_replicas: ca.spec.min_replicas(),
        max_replicas: autoscaling.max_replicas,
        metrics,
        behavior: Some(HorizontalPodAutoscalerBehavior {
            scale_down: Some(HPAScalingRules {
                stabilization_window_seconds: Some(cooldown as i32),
                ..HPAScalingRules::default()
            }),
            scale_up: Some(HPAScalingRules {
                stabilization_window_seconds: Some(0),
                policies: Some(vec![HPAScalingPolicy {
                    type_: "Percent".into(),
                    value: 100,
                    period_seconds: 60,
                }]),
                ..HPAScalingRules::default()
            }),
        }),
    };
    deployment_autoscaler(
        meta(ca.name_any(), child_labels(ca, defaults)),
        ca.name_any(),
        scaling,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::tests_support::sample;

    /// Seed 001's policies as HPA metrics, its cooldown as the scale-down window.
    #[test]
    fn business_metrics_and_the_cooldown_map_onto_the_autoscaler() {
        let ca = sample();
        let mut autoscaling = ca.spec.autoscaling.clone().expect("the sample autoscales");
        autoscaling.cooldown_period = "10m".into();
        autoscaling.metrics = vec![
            serde_json::from_value(json!({"type": "Pods", "pods": {
                "metric": {"name": "pending_clearing_requests"},
                "target": {"type": "AverageValue", "averageValue": "50"}
            }}))
            .unwrap_or_default(),
        ];
        let hpa =
            serde_json::to_value(desired_hpa(&ca, &autoscaling, &WorkloadDefaults::default()))
                .unwrap_or_default();
        let spec = &hpa["spec"];
        assert_eq!(
            spec["metrics"][0]["resource"]["target"]["averageUtilization"],
            70
        );
        assert_eq!(
            spec["metrics"][1]["pods"]["metric"]["name"],
            "pending_clearing_requests"
        );
        assert_eq!(
            spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            600
        );
        assert_eq!(spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"], 0);
        assert_eq!(spec["minReplicas"], 3);
        assert_eq!(spec["maxReplicas"], 10);
        autoscaling.cooldown_period = "3h".into();
        let capped = desired_hpa(&ca, &autoscaling, &WorkloadDefaults::default());
        let window = capped
            .spec
            .and_then(|s| s.behavior)
            .and_then(|b| b.scale_down)
            .and_then(|d| d.stabilization_window_seconds);
        assert_eq!(window, Some(3600), "the API server's maximum");
    }
}
