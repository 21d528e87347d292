//! What a pass reads besides the batch: its Jobs (from the cache), the counts of a Job that
//! finished, and when its CronJob last fired.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use operator_core::Result;
use operator_core::conditions::workload_condition;

use super::{Ctx, RECORDED_ANNOTATION};
use crate::crd::BatchProcessor;
use crate::report::{self, RunReport};
use crate::resources::{ATTEMPT_LABEL, BATCH_LABEL, RUN_LABEL};
use crate::runs::{JobState, JobView};

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
pub(super) fn jobs(
    bp: &BatchProcessor,
    store: &Store<Job>,
    cron_uid: Option<&str>,
) -> Vec<JobView> {
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
    let condition = |type_| {
        workload_condition(status.conditions.as_ref(), type_)
            .filter(|c| c.status == "True")
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

/// The counts of one finished Job, from its pods' termination messages: one LIST, once per
/// Job (status records it).
pub(super) async fn report(bp: &BatchProcessor, ctx: &Ctx, job: &str) -> Result<RunReport> {
    let pods = ctx
        .api_beside::<Pod, _>(bp)
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await?;
    Ok(report::summarize(&pods.items))
}

/// When the batch's CronJob last fired (the recorded time when the CronJob says nothing, or
/// is someone else's: one of that name this batch does not control says nothing of its runs).
pub(super) async fn last_schedule_time(bp: &BatchProcessor, ctx: &Ctx) -> Result<Option<Time>> {
    let cron_job = ctx.controlled::<CronJob, _>(bp, &bp.name_any()).await?;
    Ok(cron_job
        .and_then(|c| c.status)
        .and_then(|s| s.last_schedule_time)
        .or_else(|| {
            bp.status
                .as_ref()
                .and_then(|s| s.last_schedule_time.clone())
        }))
}
