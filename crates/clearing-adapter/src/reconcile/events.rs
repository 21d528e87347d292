//! What a pass tells a human: children changed, each partner drained or restored, every
//! partner down, and the payments' success rate falling below its minimum or recovering.

use kube::ResourceExt;

use super::business::PAYMENTS_SUCCEEDING;
use super::{Ctx, status};
use crate::crd::{ClearingAdapter, ClearingAdapterStatus};
use crate::partners::{DRAIN_ANNOTATION, PartnerPlan, Transition};
use crate::resources;

/// Events: what the pass created or changed, each partner drained or restored, every
/// partner down, and the success rate crossing `minSuccessRate` either way.
pub(super) async fn announce(
    ca: &ClearingAdapter,
    ctx: &Ctx,
    plan: &PartnerPlan,
    next: &ClearingAdapterStatus,
) {
    let events = &ctx.events;
    let succeeding = |s: Option<&ClearingAdapterStatus>| {
        s.and_then(|s| operator_core::conditions::find(&s.conditions, PAYMENTS_SUCCEEDING))
            .map(|c| (c.status.clone(), c.message.clone()))
    };
    match (succeeding(ca.status.as_ref()), succeeding(Some(next))) {
        (before, Some((now, message)))
            if now == "False" && before.as_ref().is_none_or(|b| b.0 != "False") =>
        {
            events
                .warning(
                    ca,
                    operator_core::reason!("LowSuccessRate"),
                    "Judge",
                    message,
                )
                .await;
        }
        (Some((before, _)), Some((now, message))) if before == "False" && now == "True" => {
            events
                .normal(
                    ca,
                    operator_core::reason!("SuccessRateRecovered"),
                    "Judge",
                    message,
                )
                .await;
        }
        _ => {}
    }
    for t in &plan.transitions {
        match t {
            Transition::Drained {
                partner,
                failures,
                message,
            } if !plan.all_down => {
                let note = format!(
                    "partner {partner} failed {failures} health checks in a row ({message}): drained to weight 0 in {}; its traffic goes to the other partners",
                    resources::config_name(&ca.name_any())
                );
                events
                    .warning(ca, operator_core::reason!("PartnerDrained"), "Route", note)
                    .await;
            }
            Transition::Drained { .. } => {}
            Transition::DrainedByHand { partner } if !plan.all_down => {
                let note = format!(
                    "partner {partner} drained by hand ({DRAIN_ANNOTATION}): weight 0 in {}; its traffic goes to the other partners until it is taken off the annotation",
                    resources::config_name(&ca.name_any())
                );
                events
                    .normal(ca, operator_core::reason!("PartnerDrained"), "Route", note)
                    .await;
            }
            Transition::DrainedByHand { .. } => {}
            Transition::RestoredByHand {
                partner,
                still_drained,
            } => {
                let note = if *still_drained {
                    format!(
                        "partner {partner} is no longer drained by hand, but stays drained by its failing health checks until it passes successThreshold in a row"
                    )
                } else {
                    format!(
                        "partner {partner} is no longer drained by hand: its configured weight is restored"
                    )
                };
                events
                    .normal(ca, operator_core::reason!("PartnerRestored"), "Route", note)
                    .await;
            }
            Transition::Restored { partner, successes } => {
                let note = format!(
                    "partner {partner} passed {successes} health checks in a row: its configured weight is restored"
                );
                events
                    .normal(ca, operator_core::reason!("PartnerRestored"), "Route", note)
                    .await;
            }
        }
    }
    if plan.all_down {
        let (reason, message) = status::all_out(plan);
        let said = ca
            .status
            .as_ref()
            .and_then(|s| operator_core::conditions::find(&s.conditions, status::PARTNERS_HEALTHY))
            .is_some_and(|c| c.reason == reason.as_str());
        if !said {
            events.warning(ca, reason, "Route", message).await;
        }
    }
}
