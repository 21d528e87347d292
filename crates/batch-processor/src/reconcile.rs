//! The reconcile pipeline: validate → observe the batch's Jobs (and the pods of a Job that
//! finished since the last pass) → decide the runs ([`crate::runs`]) → build the children →
//! apply and prune → delete history beyond the limits → status, events and metrics from what
//! happened.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use operator_core::apply::controlled_by;
use operator_core::conditions::{ConditionStatus, Observed, set_condition, set_not_ready};
use operator_core::monitoring::PrometheusRule;
use operator_core::runtime::config::WorkloadDefaults;
use operator_core::{Changes, Clock, Context, Result, namespace_of};

use crate::crd::{BatchProcessor, BatchProcessorStatus, Phase, RunStatus};
use crate::metrics::BatchMetrics;
use crate::report::{self, RunReport};
use crate::resources::{ATTEMPT_LABEL, BATCH_LABEL, RUN_LABEL, alerts, jobs};
use crate::runs::{self, Cause, JobState, JobView, Outcome, RunPlan};
use crate::validate;

/// Set it to any new value to start a run now: `kubectl annotate bp NAME payments.io/run-now=$(date +%s)`.
pub const RUN_NOW_ANNOTATION: &str = "payments.io/run-now";
/// On a finished Job whose outcome the batch's status holds.
pub const RECORDED_ANNOTATION: &str = "payments.io/recorded";

/// The operator's own part of the reconcile context.
#[derive(Clone)]
pub struct BatchOperator {
    /// Every Job carrying the batch label, status only.
    pub jobs: Store<Job>,
    pub defaults: WorkloadDefaults,
    pub metrics: BatchMetrics,
    pub now: Clock,
}

impl std::fmt::Debug for BatchOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchOperator")
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

type Ctx = Arc<Context<BatchOperator>>;

/// Keeps of a cached Job only what the run logic reads: its metadata (of the annotations,
/// the recorded mark) and status.
pub fn compact_job(job: &mut Job) {
    job.spec = None;
    job.metadata.managed_fields = None;
    if let Some(annotations) = job.metadata.annotations.as_mut() {
        annotations.retain(|k, _| k == RECORDED_ANNOTATION);
    }
}

/// The batch a Job belongs to, by its label.
pub fn batch_of(job: &Job) -> Option<ObjectRef<BatchProcessor>> {
    let name = job.labels().get(BATCH_LABEL)?;
    Some(ObjectRef::new(name).within(&job.namespace()?))
}

/// The batch's Jobs: those its CronJob (`cron_uid`, when the batch controls one) or the batch
/// itself controls. A CronJob of the batch's name that is someone else's owns none of them.
fn observe_jobs(bp: &BatchProcessor, store: &Store<Job>, cron_uid: Option<&str>) -> Vec<JobView> {
    let (name, namespace) = (bp.name_any(), bp.namespace());
    let uid = bp.meta().uid.clone().unwrap_or_default();
    store
        .state()
        .iter()
        .filter(|j| j.namespace() == namespace && j.labels().get(BATCH_LABEL) == Some(&name))
        .filter_map(|j| {
            let owner = j
                .owner_references()
                .iter()
                .find(|o| o.controller == Some(true))?;
            let by_operator = owner.uid == uid;
            let ours =
                by_operator || (owner.kind == "CronJob" && Some(owner.uid.as_str()) == cron_uid);
            ours.then(|| job_view(j, by_operator))
        })
        .collect()
}

fn job_view(job: &Job, by_operator: bool) -> JobView {
    let name = job.name_any();
    let labels = job.labels();
    let status = job.status.clone().unwrap_or_default();
    let condition = |type_: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == "True")
            .cloned()
    };
    let created = job
        .creation_timestamp()
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let state = if let Some(done) = condition("Complete") {
        let at = status
            .completion_time
            .as_ref()
            .or(done.last_transition_time.as_ref())
            .map_or(created, |t| t.0);
        JobState::Complete { at }
    } else if let Some(failed) = condition("Failed") {
        let at = failed
            .last_transition_time
            .as_ref()
            .map_or(created, |t| t.0);
        let why = [failed.reason, failed.message]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        JobState::Failed { at, message: why }
    } else {
        JobState::Active
    };
    JobView {
        run: labels
            .get(RUN_LABEL)
            .cloned()
            .unwrap_or_else(|| name.clone()),
        attempt: labels
            .get(ATTEMPT_LABEL)
            .and_then(|a| a.parse().ok())
            .unwrap_or(1),
        name,
        by_operator,
        created,
        start: status.start_time.map(|t| t.0),
        state,
        recorded: job.annotations().contains_key(RECORDED_ANNOTATION),
    }
}

/// Marks Jobs whose outcome the status now holds, so no later pass records them again.
async fn mark_recorded(bp: &BatchProcessor, ctx: &Ctx, names: Vec<String>) -> Result<()> {
    let api = ctx.api_beside::<Job, _>(bp);
    let mark = serde_json::json!({"metadata": {"annotations": {RECORDED_ANNOTATION: "true"}}});
    for name in names {
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&mark))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The counts of one finished Job, from its pods' termination messages: one LIST, once per
/// Job (status records it).
async fn read_report(bp: &BatchProcessor, ctx: &Ctx, job: &str) -> Result<RunReport> {
    let pods = ctx
        .api_beside::<Pod, _>(bp)
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await?;
    Ok(report::summarize(&pods.items))
}

pub async fn reconcile(bp: Arc<BatchProcessor>, ctx: Ctx) -> Result<Action> {
    let op = &ctx.operator;
    if ctx.status_writes.is_stale(&*bp) {
        return Ok(ctx.resync());
    }
    let now = (op.now)();
    let name = bp.name_any();

    let errors = validate::validate(&name, &bp.spec);
    let checked = ctx.check_spec(&*bp, crate::ANNOTATIONS, errors, Phase::Invalid, now);
    if let Some(refused) = checked.await {
        return refused;
    }

    let cron_uid = ctx
        .children
        .of::<CronJob>()?
        .controlled_uid(&*bp, &name)
        .await?;
    let jobs = observe_jobs(&bp, &op.jobs, cron_uid.as_deref());
    let report = match runs::unrecorded(&bp, &jobs) {
        Some(job) => Some(read_report(&bp, &ctx, &job.name).await?),
        None => None,
    };
    let run_now = bp.annotations().get(RUN_NOW_ANNOTATION).map(String::as_str);
    let plan = runs::plan(&bp, &jobs, report.as_ref(), run_now, now);

    let changes = apply_children(&bp, &ctx, &plan).await?;
    let refusal = changes.refusal();
    if refusal.is_none() {
        delete_history(&bp, &ctx, &jobs).await?;
    }

    let cron_job = ctx
        .api_beside::<CronJob, _>(&*bp)
        .get_opt(&name)
        .await?
        .filter(|c| controlled_by(c.meta(), &*bp));
    let last_schedule_time = cron_job
        .and_then(|c| c.status)
        .and_then(|s| s.last_schedule_time)
        .or_else(|| {
            bp.status
                .as_ref()
                .and_then(|s| s.last_schedule_time.clone())
        });
    let mut status = observed_status(&bp, &plan, last_schedule_time, now);
    if let Some(refusal) = &refusal {
        set_not_ready(&mut status.conditions, refusal, bp.meta().generation, now);
    }
    announce(&bp, &ctx, &plan, &changes).await;
    ctx.write_status(&*bp, &status).await?;
    mark_recorded(&bp, &ctx, runs::to_mark(&plan, &jobs)).await?;

    op.metrics.observe(&bp, &status);
    if let Some((_, outcome)) = &plan.recorded {
        op.metrics.recorded(outcome);
    }
    match refusal {
        Some(refusal) => Err(refusal),
        None => Ok(match plan.wake_after {
            Some(wait) => {
                Action::requeue(wait.max(Duration::from_secs(1)).min(ctx.settings().resync))
            }
            None => ctx.resync(),
        }),
    }
}

/// Applies the CronJob (held while the operator's own run goes), the Job this pass starts,
/// and the PrometheusRule where alerting is on and the Prometheus Operator is installed.
async fn apply_children(bp: &BatchProcessor, ctx: &Ctx, plan: &RunPlan) -> Result<Changes> {
    let defaults = &ctx.operator.defaults;
    let mut pass = ctx.children.pass(bp);
    pass.apply(jobs::desired_cron_job(bp, defaults, plan.hold_schedule))
        .await?;
    if let Some(start) = &plan.start {
        pass.apply(jobs::desired_run_job(bp, defaults, start))
            .await?;
    }
    if let Some(monitoring) = bp.spec.alerting()
        && ctx.children.served::<PrometheusRule>().await?
    {
        pass.apply(alerts::desired_alerts(bp, monitoring, defaults))
            .await?;
    }
    pass.finish().await
}

/// Deletes the operator's finished Jobs beyond the history limits (and their pods: a Job is
/// deleted in the background, not orphaning them).
async fn delete_history(bp: &BatchProcessor, ctx: &Ctx, jobs: &[JobView]) -> Result<()> {
    let api = ctx.api_beside::<Job, _>(bp);
    for name in runs::beyond_history(bp, jobs) {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {
                tracing::info!(job = %name, namespace = namespace_of(bp), "deleted beyond the history limits")
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The status a pass reports: the run state the plan decided, the CronJob's last schedule
/// time, and the Ready and LastRunSucceeded conditions.
pub fn observed_status(
    bp: &BatchProcessor,
    plan: &RunPlan,
    last_schedule_time: Option<Time>,
    now: Timestamp,
) -> BatchProcessorStatus {
    let generation = bp.meta().generation;
    let mut status = bp.status.clone().unwrap_or_default();
    status.phase = Some(plan.phase);
    status.last_schedule_time = last_schedule_time;
    status.last_successful_time = plan.last_successful_time.clone();
    status.last_run = plan.last_run.clone();
    status.active_run = plan.active_run.clone();
    status.pending_retry = plan.pending_retry.clone();
    status.last_run_now = plan.last_run_now.clone();
    status.run_now_values = plan.run_now_values.clone();
    status.observed_generation = generation;

    let mut ready = format!("CronJob {} runs on {:?}", bp.name_any(), bp.spec.schedule);
    if bp.spec.suspend {
        ready.push_str("; suspended: no new run starts, a run in progress finishes");
    }
    if let Some(retry) = &plan.pending_retry {
        ready.push_str(&format!(
            "; attempt {} of run {} starts at {}",
            retry.attempt, retry.run, retry.not_before.0
        ));
    }
    if plan.run_now_waiting {
        ready.push_str("; a run-now request waits for the active run to finish");
    }
    set_condition(
        &mut status.conditions,
        Observed {
            type_: "Ready",
            status: ConditionStatus::True,
            reason: operator_core::reason!("Scheduled"),
            message: ready,
        },
        generation,
        now,
    );
    let last_run = match &plan.last_run {
        None => Observed {
            type_: "LastRunSucceeded",
            status: ConditionStatus::Unknown,
            reason: operator_core::reason!("NoRunYet"),
            message: "no run has finished yet".into(),
        },
        Some(run) if run.status == RunStatus::Succeeded => Observed {
            type_: "LastRunSucceeded",
            status: ConditionStatus::True,
            reason: operator_core::reason!("RunSucceeded"),
            message: format!(
                "run {} (attempt {}) processed {} payments, {} failed",
                run.run, run.attempt, run.payments_processed, run.payments_failed
            ),
        },
        Some(run) => Observed {
            type_: "LastRunSucceeded",
            status: ConditionStatus::False,
            reason: if plan.pending_retry.is_some() {
                operator_core::reason!("RetryPending")
            } else {
                operator_core::reason!("RunFailed")
            },
            message: format!(
                "run {} (attempt {}) failed: {}; see the Job's pods for logs, fix the input or the image, or start a run with annotation {RUN_NOW_ANNOTATION}",
                run.run, run.attempt, run.message
            ),
        },
    };
    set_condition(&mut status.conditions, last_run, generation, now);
    status
}

/// Events: what the pass created or changed, each recorded attempt, each Job it started.
async fn announce(bp: &BatchProcessor, ctx: &Ctx, plan: &RunPlan, changes: &Changes) {
    let events = &ctx.events;
    events.changes(bp, changes).await;
    if let Some((run, outcome)) = &plan.recorded {
        let counts = format!(
            "processed {}, succeeded {}, failed {}",
            run.payments_processed, run.payments_succeeded, run.payments_failed
        );
        match outcome {
            Outcome::Succeeded => {
                let note = format!(
                    "run {} (attempt {}) succeeded: {counts}",
                    run.run, run.attempt
                );
                events
                    .normal(bp, operator_core::reason!("RunSucceeded"), "Run", note)
                    .await;
            }
            Outcome::Retrying(next) => {
                let note = format!(
                    "run {} attempt {} failed ({counts}): {}; attempt {} starts at {}",
                    run.run, run.attempt, run.message, next.attempt, next.not_before.0
                );
                events
                    .warning(bp, operator_core::reason!("RunFailed"), "Run", note)
                    .await;
            }
            Outcome::Failed => {
                let note = format!(
                    "run {} failed after {} attempt(s) ({counts}): {}",
                    run.run, run.attempt, run.message
                );
                events
                    .warning(bp, operator_core::reason!("RunFailed"), "Run", note)
                    .await;
            }
        }
    }
    if let Some(value) = &plan.run_now_reused {
        let note = format!(
            "{RUN_NOW_ANNOTATION}={value} is ignored: a run was already started for it, and a value starts one run only; set a new value (such as $(date +%s)) to run again"
        );
        events
            .warning(bp, operator_core::reason!("RunNowIgnored"), "Run", note)
            .await;
    }
    if let Some(retry) = &plan.superseded_retry {
        let note = format!(
            "the run-now replaces attempt {} of run {} (due {}): it runs the whole input again, so that attempt is not started",
            retry.attempt, retry.run, retry.not_before.0
        );
        events
            .normal(bp, operator_core::reason!("RetrySuperseded"), "Run", note)
            .await;
    }
    if let Some(start) = &plan.start {
        let (reason, note) = match &start.cause {
            Cause::Retry => (
                operator_core::reason!("RetryStarted"),
                format!(
                    "started Job {}: attempt {} of run {}",
                    start.job, start.attempt, start.run
                ),
            ),
            Cause::RunNow(value) => (
                operator_core::reason!("RunNowStarted"),
                format!("started Job {} for {RUN_NOW_ANNOTATION}={value}", start.job),
            ),
        };
        events.normal(bp, reason, "Run", note).await;
    }
}
