//! Status from the plan and what the Deployments report.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use operator_core::conditions::{ConditionStatus, Observed, remove, set_condition};

use crate::crd::{FailedRollout, PaymentService, PaymentServiceStatus, Phase, StrategyType};
use crate::rollout::{self, DeploymentState, RolloutPlan};
use operator_core::OptionalChild;

/// Available replicas of the pods the Service sends traffic to.
fn serving_available(
    ps: &PaymentService,
    plan: &RolloutPlan,
    observed: &BTreeMap<String, DeploymentState>,
) -> i32 {
    let name = ps.name_any();
    let serving: Vec<String> = match plan.serving_color {
        Some(color) if plan.retiring.is_empty() => {
            vec![rollout::Track::Color(color).deployment_name(&name)]
        }
        _ => plan
            .workloads
            .iter()
            .map(|w| w.track.deployment_name(&name))
            .chain(plan.retiring.iter().cloned())
            .collect(),
    };
    serving
        .iter()
        .filter_map(|n| observed.get(n))
        .map(|d| d.available_replicas)
        .sum()
}

/// Status from the plan and what the Deployments report.
pub fn observed_status(
    ps: &PaymentService,
    plan: &RolloutPlan,
    observed: &BTreeMap<String, DeploymentState>,
    monitor: OptionalChild,
    last_backup: Option<Time>,
    now: Timestamp,
) -> PaymentServiceStatus {
    let previous = ps.status.clone().unwrap_or_default();
    let generation = ps.meta().generation;
    let available = serving_available(ps, plan, observed);
    let wanted = ps.spec.min_replicas();
    let blocking = plan.blocking_failure(generation.unwrap_or(0));

    let phase = phase(plan, blocking, available, wanted);
    let ready = ready(ps, plan, blocking, available, wanted);
    let progressing = progressing(ps, plan, blocking);
    let degraded = degraded(plan, blocking);
    let mut conditions = previous.conditions.clone();
    for c in [ready, progressing, degraded] {
        // Reasons here are literals and CamelCase; an error would be a bug caught by tests.
        let _ = set_condition(&mut conditions, c, generation, now);
    }
    let service_monitor = service_monitor(monitor);
    match service_monitor {
        Some(c) => {
            let _ = set_condition(&mut conditions, c, generation, now);
        }
        None => {
            remove(&mut conditions, "ServiceMonitor");
        }
    }
    PaymentServiceStatus {
        phase: Some(phase),
        available_replicas: Some(available),
        current_version: plan.stable.as_ref().map(|s| s.version.clone()),
        current_image: plan.stable.as_ref().map(|s| s.image.clone()),
        last_backup: last_backup.or(previous.last_backup),
        conditions,
        observed_generation: generation,
        rollout: plan.rollout.clone(),
        failed_rollout: plan.failed.clone(),
        active_color: plan.active_color,
        cleanup: previous.cleanup.clone(),
    }
}

/// The phase: failed or pending before any version serves; progressing during a rollout;
/// degraded when a rollout failed or too few replicas are available.
fn phase(
    plan: &RolloutPlan,
    blocking: Option<&FailedRollout>,
    available: i32,
    wanted: i32,
) -> Phase {
    match (&plan.stable, blocking, &plan.rollout) {
        (None, Some(_), _) => Phase::Failed,
        (None, None, _) => Phase::Pending,
        (Some(_), _, Some(_)) => Phase::Progressing,
        (Some(_), Some(_), None) => Phase::Degraded,
        (Some(_), None, None) if available < wanted => Phase::Degraded,
        (Some(_), None, None) => Phase::Running,
    }
}

/// Ready: a version serves with at least the wanted replicas available.
fn ready(
    ps: &PaymentService,
    plan: &RolloutPlan,
    blocking: Option<&FailedRollout>,
    available: i32,
    wanted: i32,
) -> Observed<'static> {
    match (&plan.stable, blocking) {
        (None, Some(f)) => Observed {
            type_: "Ready",
            status: ConditionStatus::False,
            reason: operator_core::reason!("RolloutFailed"),
            message: format!(
                "version {} never became available: {}; fix spec.version or spec.image",
                f.target.version, f.message
            ),
        },
        (None, None) => Observed {
            type_: "Ready",
            status: ConditionStatus::False,
            reason: operator_core::reason!("Pending"),
            message: format!(
                "waiting for version {} to become available",
                ps.spec.version
            ),
        },
        (Some(stable), _) if available >= wanted => Observed {
            type_: "Ready",
            status: ConditionStatus::True,
            reason: operator_core::reason!("ServiceAvailable"),
            message: format!(
                "version {} is serving with {available} available replicas",
                stable.version
            ),
        },
        (Some(stable), _) => Observed {
            type_: "Ready",
            status: ConditionStatus::False,
            reason: operator_core::reason!("ReplicasUnavailable"),
            message: format!(
                "version {}: {available} of {wanted} replicas available",
                stable.version
            ),
        },
    }
}

/// Progressing: a rollout is under way (or waits for promotion).
fn progressing(
    ps: &PaymentService,
    plan: &RolloutPlan,
    blocking: Option<&FailedRollout>,
) -> Observed<'static> {
    match &plan.rollout {
        Some(r) => Observed {
            type_: "Progressing",
            status: ConditionStatus::True,
            reason: match r.strategy {
                _ if plan.awaiting_promotion.is_some() => {
                    operator_core::reason!("AwaitingPromotion")
                }
                StrategyType::RollingUpdate => operator_core::reason!("RollingUpdate"),
                StrategyType::Canary => operator_core::reason!("CanaryInProgress"),
                StrategyType::BlueGreen => operator_core::reason!("PreviewStarting"),
            },
            message: match &plan.awaiting_promotion {
                Some(target) => format!(
                    "version {} is available on the idle colour and waits for promotion: annotate the PaymentService {}={}",
                    target.version,
                    rollout::PROMOTE_ANNOTATION,
                    target.version
                ),
                None => progress_message(ps, r),
            },
        },
        None if blocking.is_some() => Observed {
            type_: "Progressing",
            status: ConditionStatus::False,
            reason: operator_core::reason!("RolledBack"),
            message: "the last rollout failed; see Degraded".into(),
        },
        None => Observed {
            type_: "Progressing",
            status: ConditionStatus::False,
            reason: operator_core::reason!("RolloutComplete"),
            message: "no rollout in progress".into(),
        },
    }
}

/// Degraded: the last rollout failed, and what it was rolled back to.
fn degraded(plan: &RolloutPlan, blocking: Option<&FailedRollout>) -> Observed<'static> {
    match (blocking, &plan.stable) {
        (Some(f), Some(stable)) => Observed {
            type_: "Degraded",
            status: ConditionStatus::True,
            reason: operator_core::reason!("RolledBack"),
            message: format!(
                "version {} failed ({}) and was rolled back to {}; it is not retried until the spec changes",
                f.target.version, f.message, stable.version
            ),
        },
        (Some(f), None) => Observed {
            type_: "Degraded",
            status: ConditionStatus::True,
            reason: operator_core::reason!("RolloutFailed"),
            message: format!(
                "version {} failed ({}); there is no earlier version to roll back to",
                f.target.version, f.message
            ),
        },
        (None, _) => Observed {
            type_: "Degraded",
            status: ConditionStatus::False,
            reason: operator_core::reason!("AsExpected"),
            message: "no failed rollout".into(),
        },
    }
}

/// The ServiceMonitor condition, when scraping is asked for.
fn service_monitor(monitor: OptionalChild) -> Option<Observed<'static>> {
    match monitor {
        OptionalChild::NotWanted => None,
        OptionalChild::Applied => Some(Observed {
            type_: "ServiceMonitor",
            status: ConditionStatus::True,
            reason: operator_core::reason!("Applied"),
            message: "Prometheus scrapes the metrics port through a ServiceMonitor".into(),
        }),
        OptionalChild::Unavailable => Some(Observed {
            type_: "ServiceMonitor",
            status: ConditionStatus::False,
            reason: operator_core::reason!("PrometheusOperatorNotInstalled"),
            message: "monitoring.coreos.com/v1 ServiceMonitor is not served by this cluster; scraping relies on the prometheus.io pod annotations until the Prometheus Operator is installed".into(),
        }),
    }
}

fn progress_message(ps: &PaymentService, r: &crate::crd::Rollout) -> String {
    let steps = ps.spec.canary_steps();
    match (r.strategy, r.step) {
        (StrategyType::Canary, Some(step)) => {
            let step = usize::try_from(step).unwrap_or(0);
            match steps.get(step) {
                Some(s) => format!(
                    "canary of {} at step {} of {} ({}%)",
                    r.target.version,
                    step + 1,
                    steps.len(),
                    s.set_weight
                ),
                None => format!("promoting {} to the stable Deployment", r.target.version),
            }
        }
        (StrategyType::BlueGreen, _) => format!(
            "bringing up {} as the idle colour; traffic switches once it is available",
            r.target.version
        ),
        _ => format!("rolling out {}", r.target.version),
    }
}
