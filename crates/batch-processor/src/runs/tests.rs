use super::*;
use crate::crd::BatchProcessorStatus;
use crate::crd::tests_support::seed;
use crate::report::WorkerCounts;

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_760_000_000 + seconds).unwrap_or_default()
}

fn job(name: &str, run: &str, attempt: i32, by_operator: bool, state: JobState) -> JobView {
    JobView {
        name: name.into(),
        run: run.into(),
        attempt,
        by_operator,
        created: t(0),
        start: Some(t(0)),
        state,
        recorded: false,
    }
}

fn scheduled(state: JobState) -> JobView {
    job(
        "daily-payment-batch-29000000",
        "daily-payment-batch-29000000",
        1,
        false,
        state,
    )
}

fn report(processed: i64, failed: i64) -> RunReport {
    RunReport {
        counts: WorkerCounts {
            payments_processed: processed,
            payments_succeeded: processed - failed,
            payments_failed: failed,
        },
        bad_workers: vec![],
    }
}

/// Marks the Jobs the pass recorded, as the reconcile does after its status write.
fn mark(plan: &RunPlan, jobs: &mut [JobView]) {
    for name in to_mark(plan, jobs) {
        if let Some(j) = jobs.iter_mut().find(|j| j.name == name) {
            j.recorded = true;
        }
    }
}

/// The batch with the status a pass wrote after `plan`.
fn after(bp: &BatchProcessor, plan: &RunPlan) -> BatchProcessor {
    let mut next = bp.clone();
    next.status = Some(BatchProcessorStatus {
        last_run: plan.last_run.clone(),
        last_successful_time: plan.last_successful_time.clone(),
        pending_retry: plan.pending_retry.clone(),
        last_run_now: plan.last_run_now.clone(),
        run_now_values: plan.run_now_values.clone(),
        active_run: plan.active_run.clone(),
        ..BatchProcessorStatus::default()
    });
    next
}

#[test]
fn a_successful_run_is_recorded_with_its_counts_once() {
    let bp = seed();
    let jobs = [scheduled(JobState::Complete { at: t(2700) })];
    let counts = report(9847, 24);
    let plan = plan(&bp, &jobs, Some(&counts), None, t(2701));
    let (run, outcome) = plan.recorded.clone().expect("the finished run is recorded");
    assert_eq!(outcome, Outcome::Succeeded);
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(
        (
            run.payments_processed,
            run.payments_succeeded,
            run.payments_failed
        ),
        (9847, 9823, 24)
    );
    assert_eq!(run.completion_time, Some(Time(t(2700))));
    assert_eq!(plan.last_successful_time, Some(Time(t(2700))));
    assert_eq!(plan.phase, Phase::Scheduled);
    assert!(!plan.hold_schedule);

    let again = super::plan(&after(&bp, &plan), &jobs, None, None, t(2800));
    assert_eq!(again.recorded, None, "recorded once");
    assert_eq!(again.last_run, plan.last_run);
    assert_eq!(to_mark(&plan, &jobs), ["daily-payment-batch-29000000"]);
}

#[test]
fn runs_finishing_in_the_same_second_are_each_recorded_once_in_order() {
    let mut bp = seed();
    let done = |name: &str| JobView {
        recorded: false,
        ..job(name, name, 1, true, JobState::Complete { at: t(5) })
    };
    let mut jobs = vec![done("b-first"), done("a-second")];
    jobs[1].created = t(1);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let p = plan(&bp, &jobs, Some(&report(1, 0)), None, t(6));
        if let Some((run, _)) = &p.recorded {
            seen.push(run.job.clone());
        }
        mark(&p, &mut jobs);
        bp = after(&bp, &p);
    }
    assert_eq!(seen, ["b-first", "a-second"]);
}

#[test]
fn a_run_over_the_threshold_fails_and_is_retried_with_backoff() {
    let bp = seed();
    let jobs = [scheduled(JobState::Complete { at: t(100) })];
    let plan = plan(&bp, &jobs, Some(&report(1000, 11)), None, t(101));
    let (run, outcome) = plan.recorded.clone().expect("recorded");
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.message
            .contains("11 of 1000 payments failed, over failedPaymentsThreshold 1%"),
        "{}",
        run.message
    );
    let retry = PendingRetry {
        run: "daily-payment-batch-29000000".into(),
        attempt: 2,
        not_before: Time(t(130)),
    };
    assert_eq!(outcome, Outcome::Retrying(retry.clone()));
    assert_eq!(plan.pending_retry, Some(retry));
    assert_eq!(plan.start, None, "not before the backoff");
    assert_eq!(plan.wake_after, Some(Duration::from_secs(29)));
    assert_eq!(plan.phase, Phase::Retrying);
    assert!(
        plan.hold_schedule,
        "the next scheduled run waits for the retry"
    );

    let due = super::plan(&after(&bp, &plan), &jobs, None, None, t(130));
    assert_eq!(
        due.start,
        Some(StartRun {
            job: "daily-payment-batch-29000000-retry-1".into(),
            run: "daily-payment-batch-29000000".into(),
            attempt: 2,
            cause: Cause::Retry,
        })
    );
    assert_eq!(due.pending_retry, None);
    assert_eq!(due.phase, Phase::Running);
    assert!(due.hold_schedule);
}

#[test]
fn after_the_last_attempt_the_run_is_failed() {
    let mut bp = seed();
    bp.spec.retry.max_attempts = 2;
    let run = "daily-payment-batch-29000000";
    let failed = |at| JobState::Failed {
        at: t(at),
        message: "BackoffLimitExceeded".into(),
    };
    let mut jobs = vec![scheduled(failed(10))];
    let mut now = 10;
    let mut outcomes = Vec::new();
    for attempt in 2..=3 {
        let p = plan(&bp, &jobs, None, None, t(now));
        outcomes.push(p.recorded.clone().map(|(_, o)| o));
        mark(&p, &mut jobs);
        bp = after(&bp, &p);
        now += 1000;
        let p = plan(&bp, &jobs, None, None, t(now));
        assert_eq!(p.start.as_ref().map(|s| s.attempt), Some(attempt));
        bp = after(&bp, &p);
        now += 10;
        jobs.push(job(
            &retry_job_name(run, attempt),
            run,
            attempt,
            true,
            failed(now),
        ));
    }
    let last = plan(&bp, &jobs, None, None, t(now));
    let (record, outcome) = last.recorded.clone().expect("recorded");
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(record.attempt, 3);
    assert!(
        record
            .message
            .contains("the Job failed: BackoffLimitExceeded")
    );
    assert_eq!(last.pending_retry, None);
    assert_eq!(last.start, None);
    assert!(!last.hold_schedule, "the schedule goes on");
    assert!(matches!(outcomes[0], Some(Outcome::Retrying(ref r)) if r.not_before == Time(t(40))));
    assert!(matches!(outcomes[1], Some(Outcome::Retrying(ref r)) if r.attempt == 3));
}

#[test]
fn backoff_doubles_and_is_capped() {
    assert_eq!(backoff(30, 1), Duration::from_secs(30));
    assert_eq!(backoff(30, 2), Duration::from_secs(60));
    assert_eq!(backoff(30, 4), Duration::from_secs(240));
    assert_eq!(backoff(30, 10), MAX_BACKOFF);
    assert_eq!(backoff(1800, 50), MAX_BACKOFF);
}

/// An earlier value set again (after another) starts nothing: it is reported once, and the
/// memory of values is bounded.
#[test]
fn a_run_now_value_used_before_never_starts_another_run() {
    let mut bp = seed();
    for (i, value) in ["a", "b"].into_iter().enumerate() {
        let p = plan(&bp, &[], None, Some(value), t(i as i64 * 10));
        assert!(p.start.is_some(), "{value}");
        bp = after(&bp, &p);
    }
    let again = plan(&bp, &[], None, Some("a"), t(30));
    assert_eq!(again.start, None, "a was used before");
    assert_eq!(again.run_now_reused.as_deref(), Some("a"));
    let bp = after(&bp, &again);
    let quiet = plan(&bp, &[], None, Some("a"), t(31));
    assert_eq!(quiet.run_now_reused, None, "said once");
    assert_eq!(quiet.start, None);

    let mut bp = seed();
    for i in 0..(RUN_NOW_MEMORY + 5) {
        let p = plan(&bp, &[], None, Some(&format!("v{i}")), t(i as i64));
        bp = after(&bp, &p);
    }
    let values = bp
        .status
        .as_ref()
        .map(|s| s.run_now_values.clone())
        .unwrap_or_default();
    assert_eq!(values.len(), RUN_NOW_MEMORY);
    assert_eq!(values.last().map(String::as_str), Some("v36"));
}

/// A run-now while a retry waits replaces that retry, and says so.
#[test]
fn a_run_now_while_a_retry_waits_supersedes_it_visibly() {
    let mut bp = seed();
    let waiting = PendingRetry {
        run: "daily-payment-batch-29000000".into(),
        attempt: 2,
        not_before: Time(t(600)),
    };
    bp.status = Some(BatchProcessorStatus {
        pending_retry: Some(waiting.clone()),
        ..BatchProcessorStatus::default()
    });
    let p = plan(&bp, &[], None, Some("incident-7"), t(10));
    assert!(matches!(
        p.start.as_ref().map(|s| &s.cause),
        Some(Cause::RunNow(_))
    ));
    assert_eq!(p.superseded_retry, Some(waiting));
    assert_eq!(p.pending_retry, None);
}

#[test]
fn run_now_starts_one_run_per_value_and_never_overlaps() {
    let bp = seed();
    let first = plan(&bp, &[], None, Some("incident-42"), t(0));
    let name = run_now_job_name("daily-payment-batch", "incident-42");
    assert_eq!(
        first.start.as_ref().map(|s| s.job.as_str()),
        Some(name.as_str())
    );
    assert_eq!(first.last_run_now.as_deref(), Some("incident-42"));
    assert!(first.hold_schedule);

    let bp = after(&bp, &first);
    let running = [job(&name, &name, 1, true, JobState::Active)];
    let again = plan(&bp, &running, None, Some("incident-42"), t(1));
    assert_eq!(
        again.start, None,
        "the same value never starts a second run"
    );
    let done = [job(&name, &name, 1, true, JobState::Complete { at: t(5) })];
    let after_done = plan(&bp, &done, Some(&report(1, 0)), Some("incident-42"), t(6));
    assert_eq!(after_done.start, None);

    // A new value while a scheduled run is active waits for it.
    let busy = [scheduled(JobState::Active)];
    let waiting = plan(&bp, &busy, None, Some("incident-43"), t(7));
    assert_eq!(waiting.start, None);
    assert!(waiting.run_now_waiting);
    assert_eq!(waiting.last_run_now.as_deref(), Some("incident-42"));
}

#[test]
fn a_job_that_exists_is_never_started_again_after_a_lost_status_write() {
    let bp = seed();
    let name = run_now_job_name("daily-payment-batch", "x");
    let jobs = [job(&name, &name, 1, true, JobState::Active)];
    let p = plan(&bp, &jobs, None, Some("x"), t(0));
    assert_eq!(p.start, None);
    assert_eq!(p.last_run_now.as_deref(), Some("x"));

    let mut bp = seed();
    bp.status = Some(BatchProcessorStatus {
        pending_retry: Some(PendingRetry {
            run: "r".into(),
            attempt: 2,
            not_before: Time(t(0)),
        }),
        ..BatchProcessorStatus::default()
    });
    let jobs = [job("r-retry-1", "r", 2, true, JobState::Active)];
    let p = plan(&bp, &jobs, None, None, t(10));
    assert_eq!(p.start, None);
    assert_eq!(p.pending_retry, None);
    assert_eq!(p.active_run.map(|a| a.job), Some("r-retry-1".into()));
}

#[test]
fn suspend_holds_the_schedule_and_the_retries_but_not_the_active_run() {
    let mut bp = seed();
    bp.spec.suspend = true;
    bp.status = Some(BatchProcessorStatus {
        pending_retry: Some(PendingRetry {
            run: "r".into(),
            attempt: 2,
            not_before: Time(t(0)),
        }),
        ..BatchProcessorStatus::default()
    });
    let idle = plan(&bp, &[], None, None, t(100));
    assert_eq!(idle.start, None);
    assert_eq!(idle.phase, Phase::Suspended);
    assert!(idle.hold_schedule);
    assert_eq!(idle.wake_after, None);
    let running = plan(&bp, &[scheduled(JobState::Active)], None, None, t(100));
    assert_eq!(
        running.phase,
        Phase::Running,
        "a running batch is never killed"
    );
}

#[test]
fn history_beyond_the_limits_goes_newest_kept() {
    let mut bp = seed();
    bp.spec.successful_jobs_history_limit = 1;
    bp.spec.failed_jobs_history_limit = 2;
    let recorded = |j: JobView| JobView {
        recorded: true,
        ..j
    };
    let done = |n: &str, at| recorded(job(n, n, 1, true, JobState::Complete { at: t(at) }));
    let failed = |n: &str, at| {
        let state = JobState::Failed {
            at: t(at),
            message: String::new(),
        };
        recorded(job(n, n, 2, true, state))
    };
    let jobs = [
        done("s1", 1),
        done("s2", 2),
        done("s3", 3),
        failed("f1", 1),
        failed("f2", 2),
        failed("f3", 3),
        job(
            "cron-1",
            "cron-1",
            1,
            false,
            JobState::Complete { at: t(0) },
        ),
        job("active", "active", 1, true, JobState::Active),
        job(
            "unrecorded",
            "unrecorded",
            1,
            true,
            JobState::Complete { at: t(0) },
        ),
    ];
    let mut doomed = beyond_history(&bp, &jobs);
    doomed.sort();
    assert_eq!(doomed, ["f1", "s1", "s2"]);

    // The last run's Job stays, whatever its time says.
    bp.status = Some(BatchProcessorStatus {
        last_run: Some(LastRun {
            job: "s1".into(),
            run: "s1".into(),
            attempt: 1,
            start_time: None,
            completion_time: None,
            status: RunStatus::Succeeded,
            payments_processed: 0,
            payments_succeeded: 0,
            payments_failed: 0,
            message: String::new(),
        }),
        ..BatchProcessorStatus::default()
    });
    let mut doomed = beyond_history(&bp, &jobs);
    doomed.sort();
    assert_eq!(doomed, ["f1", "s2", "s3"]);
}
