//! `<name>-hpa` (autoscaling/v2): replicas between `minReplicas` and `maxReplicas`, aiming at
//! `targetCPUUtilization` (default 80%), and scale-up behaviour from `scaleUpPolicy`:
//!
//! | policy | stabilization | at most, per period | picks |
//! |---|---|---|---|
//! | aggressive | none | double, or +4 pods, per 15s | the larger |
//! | moderate (default) | 30s | +50%, or +2 pods, per 30s | the larger |
//! | conservative | 120s | +1 pod per 60s | — |
//!
//! Aggressive is Kubernetes' own default scale-up, for strategies that must keep up with a
//! burst of market data (arbitrage); moderate halves it and waits out 30s spikes so a short
//! burst does not double the fleet; conservative adds one replica a minute after two minutes
//! of sustained load, for strategies where each replica carries position risk. Scale-down
//! keeps Kubernetes' default (5 minutes' stabilization).

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior,
};
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{Scaling, deployment_autoscaler, meta, utilization};

use super::{child_labels, deployment_name, hpa_name};
use crate::crd::{ScaleUpPolicy, TradingAlgorithm};

/// CPU utilization the autoscaler aims for when the spec names none.
pub const DEFAULT_TARGET_CPU: i32 = 80;

fn rule(kind: &str, value: i32, period_seconds: i32) -> HPAScalingPolicy {
    HPAScalingPolicy {
        type_: kind.into(),
        value,
        period_seconds,
    }
}

/// `behavior.scaleUp` for a policy (see the module docs for why these numbers).
pub fn scale_up_rules(policy: ScaleUpPolicy) -> HPAScalingRules {
    let (window, policies, select) = match policy {
        ScaleUpPolicy::Aggressive => (
            0,
            vec![rule("Percent", 100, 15), rule("Pods", 4, 15)],
            "Max",
        ),
        ScaleUpPolicy::Moderate => (
            30,
            vec![rule("Percent", 50, 30), rule("Pods", 2, 30)],
            "Max",
        ),
        ScaleUpPolicy::Conservative => (120, vec![rule("Pods", 1, 60)], "Max"),
    };
    HPAScalingRules {
        stabilization_window_seconds: Some(window),
        policies: Some(policies),
        select_policy: Some(select.into()),
        ..HPAScalingRules::default()
    }
}

pub fn desired_hpa(ta: &TradingAlgorithm, defaults: &WorkloadDefaults) -> HorizontalPodAutoscaler {
    let scaling = &ta.spec.scaling_policy;
    let target_cpu = scaling.target_cpu_utilization.unwrap_or(DEFAULT_TARGET_CPU);
    let scale_up = scale_up_rules(scaling.scale_up_policy.unwrap_or_default());
    let scaling = Scaling {
        min_replicas: scaling.min_replicas,
        max_replicas: scaling.max_replicas,
        metrics: vec![utilization("cpu", target_cpu)],
        behavior: Some(HorizontalPodAutoscalerBehavior {
            scale_up: Some(scale_up),
            ..HorizontalPodAutoscalerBehavior::default()
        }),
    };
    let meta = meta(hpa_name(&ta.name_any()), child_labels(ta, defaults));
    deployment_autoscaler(meta, deployment_name(&ta.name_any()), scaling)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::sample;

    #[test]
    fn bounds_and_target_follow_the_scaling_policy() {
        let spec = desired_hpa(&sample(), &WorkloadDefaults::default())
            .spec
            .unwrap_or_default();
        assert_eq!(spec.min_replicas, Some(3));
        assert_eq!(spec.max_replicas, 15);
        assert_eq!(
            spec.scale_target_ref.name,
            "momentum-trader-prod-deployment"
        );
        let target = spec.metrics.unwrap_or_default()[0]
            .resource
            .clone()
            .map(|r| r.target.average_utilization);
        assert_eq!(target, Some(Some(60)));
    }

    #[test]
    fn scale_up_policies_differ_in_speed() {
        let window = |p| scale_up_rules(p).stabilization_window_seconds;
        assert_eq!(window(ScaleUpPolicy::Aggressive), Some(0));
        assert_eq!(window(ScaleUpPolicy::Moderate), Some(30));
        assert_eq!(window(ScaleUpPolicy::Conservative), Some(120));
        let conservative = scale_up_rules(ScaleUpPolicy::Conservative)
            .policies
            .unwrap_or_default();
        assert_eq!(conservative, vec![rule("Pods", 1, 60)]);
        let mut ta = sample();
        ta.spec.scaling_policy.scale_up_policy = None;
        ta.spec.scaling_policy.target_cpu_utilization = None;
        let spec = desired_hpa(&ta, &WorkloadDefaults::default())
            .spec
            .unwrap_or_default();
        assert_eq!(
            spec.behavior.and_then(|b| b.scale_up),
            Some(scale_up_rules(ScaleUpPolicy::Moderate))
        );
        let target = spec.metrics.unwrap_or_default()[0]
            .resource
            .clone()
            .and_then(|r| r.target.average_utilization);
        assert_eq!(target, Some(DEFAULT_TARGET_CPU));
    }
}
