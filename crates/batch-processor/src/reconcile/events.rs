//! What a pass tells a human: children changed, each recorded attempt, each Job it started.

use super::{Ctx, RUN_NOW_ANNOTATION};
use crate::crd::BatchProcessor;
use crate::runs::{Cause, Outcome, RunPlan};

/// Events: what the pass created or changed, each recorded attempt, each Job it started.
pub(super) async fn announce(bp: &BatchProcessor, ctx: &Ctx, plan: &RunPlan) {
    let events = &ctx.events;
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
