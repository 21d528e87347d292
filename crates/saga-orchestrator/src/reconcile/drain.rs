//! Before a SagaOrchestrator goes: tell the orchestrator to start no new saga (`draining` in
//! `index.json`), wait for the instances in flight to finish or compensate — up to
//! `drainTimeout` after the deletion — then release. A timeout is reported (Warning event
//! `DrainTimedOut` naming each version and its count) and the release still happens. When
//! the whole namespace goes, nothing waits.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Resource, ResourceExt};
use operator_core::Result;
use operator_core::conditions::{ConditionStatus, Observed as Condition, set_condition};
use operator_core::finalizer::{Cleanup, Deletion, since_deletion};

use super::{Ctx, observe};
use crate::crd::{Phase, SagaOrchestrator};
use crate::definitions;
use crate::resources::config_maps::desired_sagas;

/// How often a drain looks again (the in-flight ConfigMap's changes wake it sooner).
const DRAIN_POLL: Duration = Duration::from_secs(5);

pub(super) async fn drain(
    so: Arc<SagaOrchestrator>,
    deletion: Deletion,
    ctx: Ctx,
) -> Result<Cleanup> {
    let op = &ctx.operator;
    if deletion == Deletion::Namespace {
        tracing::info!(orchestrator = %so.name_any(), namespace = so.namespace().unwrap_or_default(), "namespace deleted: released without a drain");
        return Ok(release(&so, &ctx));
    }
    let now = (op.now)();
    let timeout = so.spec.drain_timeout.or(Duration::from_secs(300));
    let elapsed = since_deletion(&*so, now);

    let observed = observe::observe(&so, &ctx).await?;
    let running: Vec<String> = observed
        .in_flight
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|((saga, version), n)| format!("{saga}/{version}: {n}"))
        .collect();
    if running.is_empty() {
        ctx.events
            .normal(
                &*so,
                operator_core::reason!("Drained"),
                "Delete",
                "no saga instance is running: released",
            )
            .await;
        return Ok(release(&so, &ctx));
    }
    if elapsed >= timeout {
        let note = format!(
            "saga instances still running after the drain timeout ({}): {}; released anyway — reconcile them from the orchestrator's persistence",
            so.spec.drain_timeout,
            running.join(", ")
        );
        ctx.events
            .warning(
                &*so,
                operator_core::reason!("DrainTimedOut"),
                "Delete",
                note,
            )
            .await;
        return Ok(release(&so, &ctx));
    }

    // No new instance: the definitions stay, with `draining` set.
    let plan = definitions::plan(
        None,
        &observed.held,
        &observed.in_flight,
        so.spec.definition_history_limit.max(0) as usize,
        true,
    );
    ctx.children
        .of::<ConfigMap>()?
        .apply(&*so, desired_sagas(&so, &plan, &op.defaults))
        .await?;
    let mut status = so.status.clone().unwrap_or_default();
    status.phase = Some(Phase::Draining);
    set_condition(
        &mut status.conditions,
        Condition {
            type_: "Ready",
            status: ConditionStatus::False,
            reason: operator_core::reason!("Draining"),
            message: format!(
                "being deleted: no new saga starts; waiting up to {} for the running ones ({})",
                so.spec.drain_timeout,
                running.join(", ")
            ),
        },
        so.meta().generation,
        now,
    );
    ctx.write_status(&*so, &status).await?;
    Ok(Cleanup::Waiting(
        DRAIN_POLL
            .min(timeout.saturating_sub(elapsed))
            .max(Duration::from_millis(200)),
    ))
}

fn release(so: &SagaOrchestrator, ctx: &Ctx) -> Cleanup {
    ctx.operator
        .metrics
        .forget(&so.namespace().unwrap_or_default(), &so.name_any());
    ctx.forget(so);
    Cleanup::Done
}
