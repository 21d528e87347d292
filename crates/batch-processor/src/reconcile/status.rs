//! Status from what the pass decided and observed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use operator_core::conditions::{ConditionStatus, Observed, set_condition};

use super::RUN_NOW_ANNOTATION;
use crate::crd::{BatchProcessor, BatchProcessorStatus, RunStatus};
use crate::runs::RunPlan;

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
