//! Before a SagaOrchestrator goes: tell the orchestrator to start no new saga (`draining` in
//! `index.json`), wait for the instances in flight to finish or compensate — up to
//! `drainTimeout` after the deletion — then release. A timeout is reported (Warning event
//! `DrainTimedOut` naming each version and its count) and the release still happens. When
//! the whole namespace goes, nothing waits.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use operator_core::Result;
use operator_core::drain::Drain;
use operator_core::finalizer::{Cleanup, Deletion};

use super::{Ctx, observe};
use crate::crd::{DRAIN_TIMEOUT_MINUTES, Phase, SagaOrchestrator};
use crate::definitions;
use crate::resources::config_map::desired_sagas;

/// How often a drain looks again (the in-flight ConfigMap's changes wake it sooner).
const DRAIN_POLL: Duration = Duration::from_secs(5);

/// The bound of a drain whose `drainTimeout` is unreadable: the field's default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(DRAIN_TIMEOUT_MINUTES as u64 * 60);

pub(super) async fn drain(
    so: Arc<SagaOrchestrator>,
    deletion: Deletion,
    ctx: Ctx,
) -> Result<Cleanup> {
    let now = ctx.now();
    let Some(drain) = Drain::begin(&*so, deletion, &so.spec.drain_timeout, DEFAULT_TIMEOUT, now)
    else {
        return Ok(Cleanup::Done);
    };

    let observed = observe::observe(&so, &ctx).await?;
    let running: Vec<String> = observed
        .in_flight
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|((saga, version), n)| format!("{saga}/{version}: {n}"))
        .collect();
    let running = running.join(", ");
    let still = (!running.is_empty()).then(|| format!("saga instances ({running})"));
    let finished = "no saga instance is running: released";
    let advice = "reconcile them from the orchestrator's persistence";
    if ctx
        .drain_over(&*so, &drain, still.as_deref(), finished, advice)
        .await
    {
        return Ok(Cleanup::Done);
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
        .apply(&*so, desired_sagas(&so, &plan, ctx.workloads()))
        .await?;
    let mut status = so.status.clone().unwrap_or_default();
    status.phase = Some(Phase::Draining);
    let message = format!(
        "being deleted: no new saga starts; waiting up to {} for the running ones ({running})",
        drain.timeout()
    );
    ctx.still_draining(&*so, status, &drain, message, DRAIN_POLL)
        .await
}
