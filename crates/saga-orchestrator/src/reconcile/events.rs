//! What a pass tells a human: children changed, definition versions added and dropped,
//! and definitions refused.

use kube::Resource;
use operator_core::FieldError;

use super::{Ctx, status};
use crate::crd::SagaOrchestrator;
use crate::definitions::DefinitionPlan;

/// Events: what the pass created or changed, versions added and dropped, and definitions
/// refused (once per refused spec generation).
pub(super) async fn announce(
    so: &SagaOrchestrator,
    ctx: &Ctx,
    plan: &DefinitionPlan,
    invalid: &[FieldError],
) {
    let events = &ctx.events;
    if !plan.added.is_empty() {
        let note = format!(
            "new definition version(s) {}: new instances start on them; instances running on older versions finish there",
            plan.added.join(", ")
        );
        events
            .normal(
                so,
                operator_core::reason!("DefinitionsUpdated"),
                "Define",
                note,
            )
            .await;
    }
    if !plan.dropped.is_empty() {
        let note = format!(
            "dropped definition version(s) {}: beyond definitionHistoryLimit, nothing runs on them",
            plan.dropped.join(", ")
        );
        events
            .normal(
                so,
                operator_core::reason!("DefinitionsDropped"),
                "Define",
                note,
            )
            .await;
    }
    let reported = so
        .status
        .as_ref()
        .and_then(|s| operator_core::conditions::find(&s.conditions, status::DEFINITIONS_VALID))
        .is_some_and(|c| c.status == "False" && c.observed_generation == so.meta().generation);
    if !invalid.is_empty() && !reported {
        events
            .warning(
                so,
                operator_core::reason!("DefinitionsInvalid"),
                "Define",
                status::invalid_message(invalid),
            )
            .await;
    }
}
