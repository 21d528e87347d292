//! The HorizontalPodAutoscaler named after the adapter: seed 001's `BusinessMetricsScaler`
//! expressed as autoscaling/v2. Its scaling policies are the `metrics` (External or Pods,
//! e.g. pending clearing requests per pod, beside CPU); its cooldown is the scale-down
//! stabilization window, so a dip in load shorter than the cooldown removes no pod; scale-up
//! is immediate, at most doubling the pods per minute (the seed's scale factor of 2).

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use kube::ResourceExt;
use kube::api::ObjectMeta;
use operator_core::runtime::config::WorkloadDefaults;
use operator_core::validation::go_duration;

use super::labels;
use crate::crd::{Autoscaling, ClearingAdapter};

/// The longest window the API server accepts (one hour).
const MAX_STABILIZATION_SECONDS: u64 = 3600;

pub fn desired_hpa(
    ca: &ClearingAdapter,
    autoscaling: &Autoscaling,
    defaults: &WorkloadDefaults,
) -> HorizontalPodAutoscaler {
    let mut metrics = Vec::new();
    if let Some(cpu) = autoscaling.target_cpu_utilization_percentage {
        metrics.push(MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(cpu),
                    ..MetricTarget::default()
                },
            }),
            ..MetricSpec::default()
        });
    }
    metrics.extend(autoscaling.metrics.iter().cloned());
    let cooldown = go_duration(&autoscaling.cooldown_period)
        .map_or(300, |d| d.as_secs().min(MAX_STABILIZATION_SECONDS));
    HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(ca.name_any()),
            labels: Some(labels(ca, defaults)),
            ..ObjectMeta::default()
        },
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: ca.name_any(),
            },
            min_replicas: Some(ca.spec.min_replicas()),
            max_replicas: autoscaling.max_replicas,
            // No metrics: Kubernetes' default, 80% CPU.
            metrics: (!metrics.is_empty()).then_some(metrics),
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
        }),
        ..HorizontalPodAutoscaler::default()
    }
}
