//! The reconcile pipeline: validate → observe the batch's Jobs (and the pods of a Job that
//! finished since the last pass) → decide the runs ([`crate::runs`]) → build the children →
//! apply and prune → delete history beyond the limits → status, events and metrics from what
//! happened.
mod apply;
mod events;
mod observe;
mod status;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use operator_core::{Context, PassStart, Result};

use crate::crd::{BatchProcessor, Phase};
use crate::metrics::BatchMetrics;
use crate::runs;

use apply::{apply_children, delete_history, mark_recorded};
use events::announce;
pub use observe::{batch_of, compact_job};
pub use status::observed_status;

/// Set it to any new value to start a run now: `kubectl annotate bp NAME payments.io/run-now=$(date +%s)`.
pub const RUN_NOW_ANNOTATION: &str = "payments.io/run-now";
/// On a finished Job whose outcome the batch's status holds.
pub const RECORDED_ANNOTATION: &str = "payments.io/recorded";

/// The operator's own part of the reconcile context.
#[derive(Clone, Debug)]
pub struct BatchOperator {
    /// Every Job carrying the batch label, status only.
    pub jobs: Store<Job>,
    pub metrics: BatchMetrics,
}

type Ctx = Arc<Context<BatchOperator>>;
/// How every pass starts ([`PassStart`]): a spec refused before the batch ever ran is
/// `Invalid`.
const START: PassStart<Phase> = PassStart::new(crate::ANNOTATIONS, Phase::Invalid);

/// Deleting a batch has no work of its own (its CronJob and Jobs are collected with it), so
/// it has no finalizer.
pub async fn reconcile(bp: Arc<BatchProcessor>, ctx: Ctx) -> Result<Action> {
    ctx.pass(bp, START, apply).await
}

async fn apply(bp: Arc<BatchProcessor>, ctx: Ctx, now: Timestamp) -> Result<Action> {
    let op = &ctx.operator;
    let name = bp.name_any();

    let cron_uid = ctx
        .children
        .of::<CronJob>()?
        .controlled_uid(&*bp, &name)
        .await?;
    let jobs = observe::jobs(&bp, &op.jobs, cron_uid.as_deref());
    let report = match runs::unrecorded(&bp, &jobs) {
        Some(job) => Some(observe::report(&bp, &ctx, &job.name).await?),
        None => None,
    };
    let run_now = bp.annotations().get(RUN_NOW_ANNOTATION).map(String::as_str);
    let plan = runs::plan(&bp, &jobs, report.as_ref(), run_now, now);

    let changes = apply_children(&bp, &ctx, &plan).await?;
    let refusal = changes.refusal();
    if refusal.is_none() {
        delete_history(&bp, &ctx, &jobs).await?;
    }

    let last_schedule_time = observe::last_schedule_time(&bp, &ctx).await?;
    let mut status = observed_status(&bp, &plan, last_schedule_time, now);
    announce(&bp, &ctx, &plan).await;
    ctx.end_pass(&*bp, &mut status, &changes, now).await?;
    mark_recorded(&bp, &ctx, runs::to_mark(&plan, &jobs)).await?;

    op.metrics.observe(&bp, &status);
    if let Some((_, outcome)) = &plan.recorded {
        op.metrics.recorded(outcome);
    }
    let next = match plan.wake_after {
        Some(wait) => Action::requeue(wait.max(Duration::from_secs(1)).min(ctx.settings().resync)),
        None => ctx.resync(),
    };
    refusal.map_or(Ok(next), Err)
}
