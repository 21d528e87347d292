//! Events a human wants in `kubectl describe`: children changed, rollout steps, results.

use kube::ResourceExt;
use operator_core::{Changes, namespace_of};

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
    changes: &Changes,
    next: &PaymentServiceStatus,
) {
    let events = &ctx.events;
    events.changes(ps, changes).await;
    let namespace = namespace_of(ps);
    let strategy = ps.spec.strategy();
    for t in &plan.transitions {
        let ended = match t {
            Transition::Completed(_) => Some(RolloutResult::Completed),
            Transition::RolledBack { .. } => Some(RolloutResult::RolledBack),
            Transition::FirstVersionFailed { .. } => Some(RolloutResult::Failed),
            _ => None,
        };
        if let Some(result) = ended {
            ctx.operator
                .metrics
                .rollout_ended(namespace, strategy, result);
        }
        match t {
            Transition::Started { target, strategy } => {
                let note = match plan.stable.as_ref() {
                    Some(stable) if stable != target => format!(
                        "rolling out {target} with {strategy:?}; {} keeps serving until it is available",
                        stable.version
                    ),
                    _ => format!("rolling out {target}"),
                };
                events
                    .normal(
                        ps,
                        operator_core::reason!("RolloutStarted"),
                        "Rollout",
                        note,
                    )
                    .await;
            }
            Transition::CanaryStep {
                step,
                steps,
                weight,
            } => {
                let note =
                    format!("canary step {step} of {steps}: {weight}% of pods run the new version");
                events
                    .normal(ps, operator_core::reason!("CanaryStep"), "Rollout", note)
                    .await;
            }
            Transition::Promoting(target) => {
                let note = format!(
                    "every canary step passed: promoting {} to the stable Deployment",
                    target.version
                );
                events
                    .normal(
                        ps,
                        operator_core::reason!("CanaryPromoting"),
                        "Rollout",
                        note,
                    )
                    .await;
            }
            Transition::Switched { color, target } => {
                let note = format!(
                    "the Service now sends traffic to {} ({})",
                    color.as_str(),
                    target.version
                );
                events
                    .normal(
                        ps,
                        operator_core::reason!("TrafficSwitched"),
                        "Rollout",
                        note,
                    )
                    .await;
            }
            Transition::Completed(target) => {
                let note = format!("version {} is available and serving", target.version);
                events
                    .normal(
                        ps,
                        operator_core::reason!("RolloutComplete"),
                        "Rollout",
                        note,
                    )
                    .await;
            }
            Transition::RolledBack { failed, to, why } => {
                let note = format!(
                    "version {} failed: {why}; rolled back to {}. It is not retried until the spec changes",
                    failed.version, to.version
                );
                events
                    .warning(ps, operator_core::reason!("RolledBack"), "Rollback", note)
                    .await;
            }
            Transition::FirstVersionFailed { failed, why } => {
                let note = format!(
                    "version {} failed: {why}; there is no earlier version to roll back to",
                    failed.version
                );
                events
                    .warning(ps, operator_core::reason!("RolloutFailed"), "Rollout", note)
                    .await;
            }
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
