//! The run state machine, pure: the batch's spec and recorded status, its Jobs as observed,
//! the counts of the newest finished Job and the time in; what to record, which Job to start
//! (a retry or a run-now), whether the CronJob must hold its schedule, and the next status
//! fields out. Every transition is a unit test; the reconcile only reads and writes.
//!
//! A *run* is one scheduled (or run-now) execution; each of its *attempts* is a Job. The
//! first attempt is the CronJob's Job (or the run-now Job), named as the run; attempt `n > 1`
//! is the operator's Job `<run>-retry-<n-1>`.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::crd::{ActiveRun, BatchProcessor, LastRun, PendingRetry, Phase, RunStatus};
use crate::report::RunReport;
use crate::validate::FailedPaymentsThreshold;

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1800);

/// A Job of the batch, as the run logic sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobView {
    pub name: String,
    /// The run it is an attempt of.
    pub run: String,
    pub attempt: i32,
    /// Created by the operator (a retry or a run-now), not by the CronJob.
    pub by_operator: bool,
    pub created: Timestamp,
    pub start: Option<Timestamp>,
    pub state: JobState,
    /// Its outcome is in the batch's status already (annotation `payments.io/recorded`).
    pub recorded: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    Active,
    Complete { at: Timestamp },
    Failed { at: Timestamp, message: String },
}

impl JobView {
    pub fn finished_at(&self) -> Option<Timestamp> {
        match &self.state {
            JobState::Active => None,
            JobState::Complete { at } | JobState::Failed { at, .. } => Some(*at),
        }
    }
}

/// Why the operator starts a Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    Retry,
    /// The `payments.io/run-now` value asked for it.
    RunNow(String),
}

/// A Job the operator starts this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartRun {
    pub job: String,
    pub run: String,
    pub attempt: i32,
    pub cause: Cause,
}

/// What a recorded attempt means.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Succeeded,
    /// Failed; its next attempt waits until `PendingRetry::not_before`.
    Retrying(PendingRetry),
    /// Failed, and no attempt is left.
    Failed,
}

/// Everything one pass decides.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPlan {
    /// The attempt recorded this pass, and what it means.
    pub recorded: Option<(LastRun, Outcome)>,
    pub start: Option<StartRun>,
    pub active_run: Option<ActiveRun>,
    pub pending_retry: Option<PendingRetry>,
    pub last_run: Option<LastRun>,
    pub last_successful_time: Option<Time>,
    pub last_run_now: Option<String>,
    /// The run-now values runs were started for, oldest first (at most [`RUN_NOW_MEMORY`]).
    pub run_now_values: Vec<String>,
    /// A run-now value set again after a run was started for it: ignored (reported once).
    pub run_now_reused: Option<String>,
    /// The retry a run-now replaced: the run-now runs the whole input again, so the earlier
    /// run's next attempt is not started (reported with an event).
    pub superseded_retry: Option<PendingRetry>,
    /// A run-now that waits for the active run to end.
    pub run_now_waiting: bool,
    /// The CronJob starts nothing while this holds: `suspend`, or the operator's own Job runs
    /// or waits to (a scheduled run must not overlap it).
    pub hold_schedule: bool,
    pub phase: Phase,
    /// When the pending retry comes due.
    pub wake_after: Option<Duration>,
}

/// The name of the Job of attempt `attempt` (2 or more) of `run`.
pub fn retry_job_name(run: &str, attempt: i32) -> String {
    format!("{run}-retry-{}", attempt - 1)
}

/// The name of the Job a `payments.io/run-now` value starts: one per value.
pub fn run_now_job_name(batch: &str, value: &str) -> String {
    let digest = operator_core::apply::short_digest([value.as_bytes()]);
    format!("{batch}-now-{}", &digest[..8])
}

/// How long attempt `attempt` (1-based) waits after it failed: `backoffSeconds`, doubled per
/// attempt, at most [`MAX_BACKOFF`].
pub fn backoff(backoff_seconds: i64, attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let seconds = u64::try_from(backoff_seconds)
        .unwrap_or(1)
        .saturating_mul(1 << exponent);
    Duration::from_secs(seconds).min(MAX_BACKOFF)
}

/// The oldest finished Job not recorded yet: its pods are read for the counts before
/// [`plan`] records it. A recorded Job is marked (the reconcile annotates it after the status
/// write); one that status names but that is not marked yet (the mark was lost) is recorded
/// already. Timestamps have a resolution of seconds, so runs are told apart by the mark, not
/// by their times.
pub fn unrecorded<'a>(bp: &BatchProcessor, jobs: &'a [JobView]) -> Option<&'a JobView> {
    let last = bp.status.as_ref().and_then(|s| s.last_run.as_ref());
    jobs.iter()
        .filter(|j| !j.recorded && last.is_none_or(|l| l.job != j.name))
        .filter_map(|j| j.finished_at().map(|at| (at, j)))
        .min_by(|(a, x), (b, y)| {
            a.cmp(b)
                .then_with(|| x.created.cmp(&y.created))
                .then_with(|| x.name.cmp(&y.name))
        })
        .map(|(_, j)| j)
}

/// The finished Jobs to mark recorded after this pass's status write: the one it recorded,
/// and any the status names already.
pub fn to_mark(plan: &RunPlan, jobs: &[JobView]) -> Vec<String> {
    let last = plan.last_run.as_ref().map(|l| l.job.as_str());
    jobs.iter()
        .filter(|j| !j.recorded && j.finished_at().is_some() && Some(j.name.as_str()) == last)
        .map(|j| j.name.clone())
        .collect()
}

fn outcome(
    job: &JobView,
    report: &RunReport,
    threshold: FailedPaymentsThreshold,
) -> (RunStatus, String) {
    let counts = report.counts;
    let mut why = Vec::new();
    if let JobState::Failed { message, .. } = &job.state {
        why.push(format!("the Job failed: {message}"));
    }
    if !report.bad_workers.is_empty() {
        why.push(format!(
            "{} worker(s) reported no counts: {}",
            report.bad_workers.len(),
            report.bad_workers.join("; ")
        ));
    }
    if threshold.exceeded(counts.payments_processed, counts.payments_failed) {
        let limit = match threshold {
            FailedPaymentsThreshold::Count(n) => n.to_string(),
            FailedPaymentsThreshold::Percent(p) => format!("{p}%"),
        };
        why.push(format!(
            "{} of {} payments failed, over failedPaymentsThreshold {limit}",
            counts.payments_failed, counts.payments_processed
        ));
    }
    if why.is_empty() {
        (RunStatus::Succeeded, String::new())
    } else {
        (RunStatus::Failed, why.join("; "))
    }
}

fn at(t: Timestamp, after: Duration) -> Timestamp {
    SignedDuration::try_from(after)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(t)
}

/// How many run-now values a batch remembers: a value among them never starts another run.
pub const RUN_NOW_MEMORY: usize = 32;

// Over 120 lines on purpose: each block is one transition of a run (record, retry, run-now,
// hold the schedule), in the order they are decided; the arithmetic is in the helpers above.
/// Decides one pass. `report` holds the counts of [`unrecorded`]'s Job, read from its pods;
/// `run_now` is the annotation's value.
pub fn plan(
    bp: &BatchProcessor,
    jobs: &[JobView],
    report: Option<&RunReport>,
    run_now: Option<&str>,
    now: Timestamp,
) -> RunPlan {
    let spec = &bp.spec;
    let status = bp.status.clone().unwrap_or_default();
    let threshold = spec
        .failed_payments_threshold
        .as_ref()
        .and_then(|t| FailedPaymentsThreshold::parse(t).ok())
        .unwrap_or_default();
    let mut last_run = status.last_run;
    let mut last_successful_time = status.last_successful_time;
    let mut pending_retry = status.pending_retry;
    let mut last_run_now = status.last_run_now;
    let mut run_now_values = status.run_now_values;
    if let Some(last) = &last_run_now
        && !run_now_values.contains(last)
    {
        run_now_values.push(last.clone());
    }
    let mut recorded = None;

    if let Some(job) = unrecorded(bp, jobs) {
        let empty = RunReport::default();
        let report = report.unwrap_or(&empty);
        let (run_status, message) = outcome(job, report, threshold);
        let finished = job.finished_at().unwrap_or(now);
        let run = LastRun {
            job: job.name.clone(),
            run: job.run.clone(),
            attempt: job.attempt,
            start_time: job.start.map(Time),
            completion_time: Some(Time(finished)),
            status: run_status,
            payments_processed: report.counts.payments_processed,
            payments_succeeded: report.counts.payments_succeeded,
            payments_failed: report.counts.payments_failed,
            message,
        };
        let meaning = if run_status == RunStatus::Succeeded {
            last_successful_time = Some(Time(finished));
            pending_retry = None;
            Outcome::Succeeded
        } else if job.attempt <= spec.retry.max_attempts {
            let next = PendingRetry {
                run: job.run.clone(),
                attempt: job.attempt + 1,
                not_before: Time(at(
                    finished,
                    backoff(spec.retry.backoff_seconds, job.attempt),
                )),
            };
            pending_retry = Some(next.clone());
            Outcome::Retrying(next)
        } else {
            pending_retry = None;
            Outcome::Failed
        };
        last_run = Some(run.clone());
        recorded = Some((run, meaning));
    }

    // A Job that exists for a run-now value (started by a pass whose status write was lost)
    // counts as that value handled: one run per value.
    let name = bp.name_any();
    if let Some(value) = run_now
        && jobs
            .iter()
            .any(|j| j.name == run_now_job_name(&name, value))
    {
        last_run_now = Some(value.to_string());
        if !run_now_values.iter().any(|v| v == value) {
            run_now_values.push(value.to_string());
        }
    }
    // A value used before, set again (the annotation rolled back, or copied): never a second
    // run; said once, then it is the value handled.
    let run_now_reused = run_now
        .filter(|v| last_run_now.as_deref() != Some(*v) && run_now_values.iter().any(|u| u == v))
        .map(String::from);
    if let Some(value) = &run_now_reused {
        last_run_now = Some(value.clone());
    }
    let active = jobs
        .iter()
        .filter(|j| j.state == JobState::Active)
        .max_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
    // Likewise, a retry Job that already exists is the pending attempt, started.
    if let Some(p) = &pending_retry
        && jobs
            .iter()
            .any(|j| j.name == retry_job_name(&p.run, p.attempt))
    {
        pending_retry = None;
    }

    let wanted_now = run_now
        .filter(|v| !v.is_empty() && last_run_now.as_deref() != Some(*v))
        .map(String::from);
    let mut start = None;
    let mut superseded_retry = None;
    if active.is_none() {
        if let Some(value) = &wanted_now {
            let job = run_now_job_name(&name, value);
            start = Some(StartRun {
                run: job.clone(),
                job,
                attempt: 1,
                cause: Cause::RunNow(value.clone()),
            });
            last_run_now = Some(value.clone());
            run_now_values.push(value.clone());
            superseded_retry = pending_retry.take();
        } else if let Some(p) = pending_retry
            .as_ref()
            .filter(|p| !spec.suspend && p.not_before.0 <= now)
        {
            start = Some(StartRun {
                job: retry_job_name(&p.run, p.attempt),
                run: p.run.clone(),
                attempt: p.attempt,
                cause: Cause::Retry,
            });
            pending_retry = None;
        }
    }

    let active_run = active
        .map(|j| ActiveRun {
            job: j.name.clone(),
            attempt: j.attempt,
            start_time: j.start.map(Time),
        })
        .or_else(|| {
            start.as_ref().map(|s| ActiveRun {
                job: s.job.clone(),
                attempt: s.attempt,
                start_time: None,
            })
        });
    let operator_job_running = active.is_some_and(|j| j.by_operator) || start.is_some();
    let phase = if active_run.is_some() {
        Phase::Running
    } else if spec.suspend {
        Phase::Suspended
    } else if pending_retry.is_some() {
        Phase::Retrying
    } else {
        Phase::Scheduled
    };
    let wake_after = pending_retry
        .as_ref()
        .filter(|_| start.is_none() && !spec.suspend)
        .map(|p| {
            let wait = now.duration_until(p.not_before.0);
            Duration::try_from(wait).unwrap_or(Duration::ZERO)
        });
    RunPlan {
        recorded,
        start,
        active_run,
        run_now_waiting: wanted_now.is_some() && active.is_some(),
        hold_schedule: spec.suspend || operator_job_running || pending_retry.is_some(),
        pending_retry,
        last_run,
        last_successful_time,
        last_run_now,
        run_now_values: {
            let excess = run_now_values.len().saturating_sub(RUN_NOW_MEMORY);
            run_now_values.split_off(excess)
        },
        run_now_reused,
        superseded_retry,
        phase,
        wake_after,
    }
}

/// The operator's finished Jobs beyond the history limits, newest kept: what to delete. The
/// Job the status names as the last run is always kept (its logs explain it), and a Job not
/// recorded yet is never deleted (its pods hold its counts). The CronJob keeps its own Jobs
/// to the same limits.
pub fn beyond_history(bp: &BatchProcessor, jobs: &[JobView]) -> Vec<String> {
    let last = bp
        .status
        .as_ref()
        .and_then(|s| s.last_run.as_ref())
        .map(|l| l.job.as_str());
    let mut finished: Vec<(&JobView, Timestamp)> = jobs
        .iter()
        .filter(|j| j.by_operator && (j.recorded || Some(j.name.as_str()) == last))
        .filter_map(|j| j.finished_at().map(|at| (j, at)))
        .collect();
    // Newest first; times have a resolution of seconds, so the last run leads its second.
    finished.sort_by(|(x, a), (y, b)| {
        let is_last = |j: &JobView| Some(j.name.as_str()) == last;
        is_last(y)
            .cmp(&is_last(x))
            .then_with(|| b.cmp(a))
            .then_with(|| y.created.cmp(&x.created))
            .then_with(|| y.name.cmp(&x.name))
    });
    let keep = |complete: bool| {
        usize::try_from(if complete {
            bp.spec.successful_jobs_history_limit
        } else {
            bp.spec.failed_jobs_history_limit
        })
        .unwrap_or(0)
    };
    let mut doomed = Vec::new();
    for complete in [true, false] {
        doomed.extend(
            finished
                .iter()
                .filter(|(j, _)| matches!(j.state, JobState::Complete { .. }) == complete)
                .skip(keep(complete))
                .map(|(j, _)| j.name.clone())
                .filter(|name| Some(name.as_str()) != last),
        );
    }
    doomed
}

#[cfg(test)]
mod tests;
