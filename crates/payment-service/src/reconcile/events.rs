//! Events a human wants in `kubectl describe`: children changed, rollout steps, results.

use kube::ResourceExt;
use operator_core::conditions::Reason;
use operator_core::namespace_of;

use super::Ctx;
use crate::crd::{PaymentService, PaymentServiceStatus};
use crate::metrics::RolloutResult;
use crate::resources::backup_volume_name;
use crate::rollout::{RolloutPlan, Transition};

/// Events a human wants in `kubectl describe`.
pub(super) async fn announce(
    ps: &PaymentService,
    ctx: &Ctx,
    plan: &RolloutPlan,
    next: &PaymentServiceStatus,
) {
    let events = &ctx.events;
    let namespace = namespace_of(ps);
    let strategy = ps.spec.strategy();
    for t in &plan.transitions {
        if let Some(result) = ended(t) {
            let metrics = &ctx.operator.metrics;
            metrics.rollout_ended(namespace, strategy, result);
        }
        let (reason, action, note) = rollout_event(t, plan);
        if failed(t) {
            events.warning(ps, reason, action, note).await;
        } else {
            events.normal(ps, reason, action, note).await;
        }
    }
    let previous = ps.status.clone().unwrap_or_default();
    let monitor_missing = |s: &PaymentServiceStatus| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "ServiceMonitor" && c.status == "False")
    };
    if monitor_missing(next) && !monitor_missing(&previous) {
        events
            .normal(
                ps,
                operator_core::reason!("ServiceMonitorSkipped"),
                "Apply",
                "the Prometheus Operator is not installed: no ServiceMonitor; pods keep their prometheus.io scrape annotations",
            )
            .await;
    }
    if next.last_backup.is_some() && next.last_backup != previous.last_backup {
        let note = format!(
            "backup exported to PersistentVolumeClaim {}",
            backup_volume_name(&ps.name_any())
        );
        events
            .normal(
                ps,
                operator_core::reason!("BackupSucceeded"),
                "Backup",
                note,
            )
            .await;
    }
}

/// How a rollout that ended with `t` ended, for the `rollout_ended` counter.
fn ended(t: &Transition) -> Option<RolloutResult> {
    match t {
        Transition::Completed(_) => Some(RolloutResult::Completed),
        Transition::RolledBack { cause, .. } => Some(RolloutResult::RolledBack(*cause)),
        Transition::FirstVersionFailed { cause, .. } => Some(RolloutResult::Failed(*cause)),
        _ => None,
    }
}

/// Whether `t` is a failure (a Warning event).
fn failed(t: &Transition) -> bool {
    matches!(
        t,
        Transition::RolledBack { .. }
            | Transition::FirstVersionFailed { .. }
            | Transition::AnalysisInconclusive { .. }
    )
}

/// What a step of the rollout tells a human: the reason, the action and the note.
fn rollout_event(t: &Transition, plan: &RolloutPlan) -> (Reason, &'static str, String) {
    match t {
        Transition::Started { target, strategy } => {
            let note = match plan.stable.as_ref() {
                Some(stable) if stable != target => format!(
                    "rolling out {target} with {strategy:?}; {} keeps serving until it is available",
                    stable.version
                ),
                _ => format!("rolling out {target}"),
            };
            (operator_core::reason!("RolloutStarted"), "Rollout", note)
        }
        Transition::CanaryStep {
            step,
            steps,
            weight,
        } => (
            operator_core::reason!("CanaryStep"),
            "Rollout",
            format!("canary step {step} of {steps}: {weight}% of pods run the new version"),
        ),
        Transition::Promoting(target) => (
            operator_core::reason!("CanaryPromoting"),
            "Rollout",
            format!(
                "every canary step passed: promoting {} to the stable Deployment",
                target.version
            ),
        ),
        Transition::Switched { color, target } => (
            operator_core::reason!("TrafficSwitched"),
            "Rollout",
            format!(
                "the Service now sends traffic to {} ({})",
                color.as_str(),
                target.version
            ),
        ),
        Transition::Completed(target) => (
            operator_core::reason!("RolloutComplete"),
            "Rollout",
            format!("version {} is available and serving", target.version),
        ),
        Transition::RolledBack {
            failed, to, why, ..
        } => (
            operator_core::reason!("RolledBack"),
            "Rollback",
            format!(
                "version {} failed: {why}; rolled back to {}. It is not retried until the spec changes",
                failed.version, to.version
            ),
        ),
        Transition::AnalysisInconclusive { metric, why } => (
            operator_core::reason!("AnalysisInconclusive"),
            "Rollout",
            format!(
                "canary analysis metric {metric} cannot be judged: {why}. The step holds (it is never promoted on an answer it cannot judge) until the metric reads; fix the query or Prometheus, or change the spec"
            ),
        ),
        Transition::FirstVersionFailed { failed, why, .. } => (
            operator_core::reason!("RolloutFailed"),
            "Rollout",
            format!(
                "version {} failed: {why}; there is no earlier version to roll back to",
                failed.version
            ),
        ),
    }
}
