//! What a pass tells a human: children changed, each partner drained or restored, and
//! every partner down.

use kube::ResourceExt;

use super::{Ctx, status};
use crate::crd::ClearingAdapter;
use crate::partners::{PartnerPlan, Transition};
use crate::resources;

/// Events: what the pass created or changed, each partner drained or restored, and every
/// partner down.
pub(super) async fn announce(ca: &ClearingAdapter, ctx: &Ctx, plan: &PartnerPlan) {
    let events = &ctx.events;
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
    let was_down = ca
        .status
        .as_ref()
        .and_then(|s| operator_core::conditions::find(&s.conditions, status::PARTNERS_HEALTHY))
        .is_some_and(|c| c.reason == "AllPartnersDown");
    if plan.all_down && !was_down {
        events
            .warning(
                ca,
                operator_core::reason!("AllPartnersDown"),
                "Route",
                "every partner carrying traffic fails its health checks: the configured weights are kept (draining all would stop every payment); check the partners' status pages and the adapter's egress",
            )
            .await;
    }
}
