//! The batch operator against testkit, whose simulated Job controller runs each Job's pods
//! to the end with the termination messages a test gives them: what a user of a
//! BatchProcessor sees, run by run.

use crate::common::*;
use anyhow::Result;
use batch_processor::{retry_job_name, run_now_job_name};
use serde_json::{Value, json};
use testkit::JobOutcome;

fn cron_job(h: &Harness, name: &str) -> Value {
    h.get("batch/v1", "cronjobs", name).unwrap_or_default()
}

fn suspended(h: &Harness, name: &str) -> bool {
    cron_job(h, name)["spec"]["suspend"] == true
}

#[tokio::test]
async fn the_seed_batch_gets_its_cron_job_and_is_ready() -> Result<()> {
    let h = start_with(seed()?).await?;
    let cron = cron_job(&h, SEED);
    assert_eq!(cron["spec"]["schedule"], "0 2 * * *");
    assert_eq!(cron["spec"]["suspend"], false);
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(cron["spec"]["jobTemplate"]["spec"]["parallelism"], 10);
    assert_eq!(
        cron["metadata"]["ownerReferences"][0]["kind"],
        "BatchProcessor"
    );
    let status = h.status(SEED);
    assert_eq!(status["phase"], "Scheduled");
    assert_eq!(condition(&status, "LastRunSucceeded")["reason"], "NoRunYet");
    assert_eq!(status["observedGeneration"], 1);
    Ok(())
}

#[tokio::test]
async fn a_successful_run_fills_last_run_from_the_workers_reports() -> Result<()> {
    let h = start_with(seed()?).await?;
    h.workloads
        .set_default_termination_messages(vec![counts(1000, 998, 2)]);
    let job = h.trigger(SEED)?;
    h.eventually("the run recorded", |h| {
        last_run(h, SEED)["job"] == job.as_str()
    })
    .await?;
    let run = last_run(&h, SEED);
    assert_eq!(run["status"], "Succeeded");
    assert_eq!(run["paymentsProcessed"], 10_000, "ten workers summed");
    assert_eq!(run["paymentsSucceeded"], 9_980);
    assert_eq!(run["paymentsFailed"], 20);
    assert_eq!(run["attempt"], 1);
    let status = h.status(SEED);
    assert_eq!(status["lastSuccessfulTime"], run["completionTime"]);
    assert_eq!(condition(&status, "LastRunSucceeded")["status"], "True");
    assert!(status["lastScheduleTime"].is_string());
    assert_eq!(h.events("RunSucceeded").len(), 1);
    let metrics = h.metrics().encode();
    for line in [
        r#"batch_processor_last_run_payments{namespace="payments",name="daily-payment-batch",result="processed"} 10000"#,
        r#"batch_processor_last_run_payments{namespace="payments",name="daily-payment-batch",result="failed"} 20"#,
        r#"batch_processor_last_run_failed{namespace="payments",name="daily-payment-batch"} 0"#,
        r#"batch_processor_runs_total{result="succeeded"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line}");
    }
    Ok(())
}

#[tokio::test]
async fn a_run_over_the_threshold_is_retried_with_backoff_then_failed() -> Result<()> {
    let mut batch = seed()?;
    batch["spec"]["retry"] = json!({"maxAttempts": 1, "backoffLimit": 0, "backoffSeconds": 60});
    let h = start_with(batch).await?;
    // 10% of the payments fail: over the default 1%, although every worker exits 0.
    h.workloads
        .set_default_termination_messages(vec![counts(100, 90, 10)]);
    let run = h.trigger(SEED)?;
    h.eventually("a retry pending", |h| {
        !h.status(SEED)["pendingRetry"].is_null()
    })
    .await?;
    let status = h.status(SEED);
    assert_eq!(status["lastRun"]["status"], "Failed");
    assert!(
        status["lastRun"]["message"].as_str().is_some_and(
            |m| m.contains("100 of 1000 payments failed, over failedPaymentsThreshold 1%")
        ),
        "{status}"
    );
    assert_eq!(status["pendingRetry"]["attempt"], 2);
    assert_eq!(status["phase"], "Retrying");
    assert_eq!(
        condition(&status, "LastRunSucceeded")["reason"],
        "RetryPending"
    );
    assert!(suspended(&h, SEED), "the schedule waits for the retry");
    assert_eq!(h.jobs_of(SEED).len(), 1, "not before the backoff");

    h.advance(61);
    let retry = retry_job_name(&run, 2);
    h.eventually("the retry run and recorded", |h| {
        last_run(h, SEED)["job"] == retry.as_str()
    })
    .await?;
    let job = h.get("batch/v1", "jobs", &retry).unwrap_or_default();
    assert_eq!(job["metadata"]["labels"]["payments.io/attempt"], "2");
    assert_eq!(job["metadata"]["labels"]["payments.io/run"], run.as_str());
    assert_eq!(h.events("RetryStarted").len(), 1);

    let status = h.status(SEED);
    assert_eq!(status["lastRun"]["attempt"], 2);
    assert!(status["pendingRetry"].is_null(), "no attempt is left");
    assert_eq!(
        condition(&status, "LastRunSucceeded")["reason"],
        "RunFailed"
    );
    assert_eq!(status["phase"], "Scheduled");
    assert_eq!(
        h.events("RunFailed").len(),
        2,
        "one Warning per failed attempt"
    );
    h.eventually("the schedule resumed", |h| !suspended(h, SEED))
        .await?;
    let metrics = h.metrics().encode();
    assert!(metrics.contains(
        r#"batch_processor_last_run_failed{namespace="payments",name="daily-payment-batch"} 1"#
    ));
    assert!(metrics.contains(r#"batch_processor_runs_total{result="retried"} 1"#));
    assert!(metrics.contains(r#"batch_processor_runs_total{result="failed"} 1"#));
    Ok(())
}

#[tokio::test]
async fn run_now_starts_exactly_one_run_per_value_and_never_overlaps() -> Result<()> {
    let h = start_with(seed()?).await?;
    h.workloads
        .set_default_termination_messages(vec![counts(5, 5, 0)]);

    h.run_now(SEED, "incident-42").await?;
    let first = run_now_job_name(SEED, "incident-42");
    h.eventually("the run-now recorded", |h| {
        last_run(h, SEED)["job"] == first.as_str()
    })
    .await?;
    assert_eq!(h.status(SEED)["lastRunNow"], "incident-42");
    assert_eq!(h.events("RunNowStarted").len(), 1);
    // Another reconcile (a resync) with the same value starts nothing.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(h.jobs_of(SEED).len(), 1);

    // A scheduled run is active: a new value waits for it.
    h.workloads.set_default_job_outcome(JobOutcome::Hold);
    let scheduled = h.trigger(SEED)?;
    h.eventually("the scheduled run active", |h| {
        h.status(SEED)["activeRun"]["job"] == scheduled.as_str()
    })
    .await?;
    h.run_now(SEED, "incident-43").await?;
    h.eventually("the run-now waiting", |h| {
        condition(&h.status(SEED), "Ready")["message"]
            .as_str()
            .is_some_and(|m| m.contains("run-now request waits"))
    })
    .await?;
    assert_eq!(
        h.jobs_of(SEED).len(),
        2,
        "nothing started beside the active run"
    );

    h.workloads.set_default_job_outcome(JobOutcome::Succeed);
    h.workloads
        .set_job_outcome(NS, &scheduled, JobOutcome::Succeed);
    let second = run_now_job_name(SEED, "incident-43");
    h.eventually("the waiting run-now started after it", |h| {
        last_run(h, SEED)["job"] == second.as_str()
    })
    .await?;
    assert_eq!(h.jobs_of(SEED).len(), 3);
    assert_eq!(h.events("RunNowStarted").len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_malformed_report_is_reported_with_the_pod_not_fatal() -> Result<()> {
    let mut batch = seed()?;
    batch["spec"]["parallelism"] = json!(2);
    batch["spec"]["retry"] = json!({"maxAttempts": 0});
    let h = start_with(batch).await?;
    h.workloads.set_default_termination_messages(vec![
        counts(10, 10, 0),
        "Traceback (most recent call last): sftp timeout".into(),
    ]);
    let job = h.trigger(SEED)?;
    h.eventually("the run recorded", |h| {
        last_run(h, SEED)["job"] == job.as_str()
    })
    .await?;
    let run = last_run(&h, SEED);
    assert_eq!(run["status"], "Failed");
    assert_eq!(
        run["paymentsProcessed"], 10,
        "the valid report still counts"
    );
    let message = run["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "{job}-1: its termination message is not the counts object"
        )),
        "{message}"
    );
    let status = h.status(SEED);
    assert_eq!(
        condition(&status, "Ready")["status"],
        "True",
        "the operator goes on"
    );
    assert_eq!(condition(&status, "LastRunSucceeded")["status"], "False");
    Ok(())
}

#[tokio::test]
async fn history_beyond_the_limits_is_deleted_with_its_pods() -> Result<()> {
    let mut batch = seed()?;
    batch["spec"]["parallelism"] = json!(1);
    batch["spec"]["successfulJobsHistoryLimit"] = json!(1);
    let h = start_with(batch).await?;
    h.workloads
        .set_default_termination_messages(vec![counts(1, 1, 0)]);
    for i in 0..4 {
        let value = format!("rerun-{i}");
        h.run_now(SEED, &value).await?;
        let job = run_now_job_name(SEED, &value);
        h.eventually("the run recorded", |h| {
            last_run(h, SEED)["job"] == job.as_str()
        })
        .await?;
    }
    h.eventually("history pruned to one", |h| h.jobs_of(SEED).len() == 1)
        .await?;
    let kept = &h.jobs_of(SEED)[0];
    assert_eq!(kept["metadata"]["name"], run_now_job_name(SEED, "rerun-3"));
    h.eventually("the pruned Jobs' pods gone", |h| {
        h.server.objects("v1", "pods").len() == 1
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn suspend_holds_the_schedule_and_keeps_the_active_run() -> Result<()> {
    let h = start_with(seed()?).await?;
    h.workloads
        .set_default_termination_messages(vec![counts(3, 3, 0)]);
    h.workloads.set_default_job_outcome(JobOutcome::Hold);
    let job = h.trigger(SEED)?;
    h.eventually("running", |h| h.status(SEED)["phase"] == "Running")
        .await?;
    h.batches()
        .patch(
            SEED,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"suspend": true}})),
        )
        .await?;
    h.eventually("the CronJob suspended", |h| suspended(h, SEED))
        .await?;
    assert!(h.get("batch/v1", "jobs", &job).is_some(), "the run goes on");
    assert_eq!(h.status(SEED)["phase"], "Running");
    h.workloads.set_job_outcome(NS, &job, JobOutcome::Succeed);
    h.eventually("suspended after the run", |h| {
        h.status(SEED)["phase"] == "Suspended" && last_run(h, SEED)["job"] == job.as_str()
    })
    .await?;
    assert_eq!(last_run(&h, SEED)["status"], "Succeeded");
    Ok(())
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named_and_nothing_applied() -> Result<()> {
    let h = start().await?;
    // A type with another type's block: refused at admission by the CRD's rule.
    let mut mismatched = seed()?;
    mismatched["spec"]["input"]["blobConfig"] =
        json!({"storageAccount": "acct", "container": "box", "secretName": "s"});
    let refused = h
        .create_as::<BatchProcessor>(mismatched)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("type sftp takes sftpConfig only")),
        "{refused:?}"
    );

    // A schedule that is not five fields: refused at admission, the field named.
    let mut daily = seed()?;
    daily["spec"]["schedule"] = json!("daily at two");
    let refused = h
        .create_as::<BatchProcessor>(daily)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("spec.schedule")),
        "{refused:?}"
    );

    // A schedule the schema cannot check: refused by the operator, field named.
    let mut bad = seed()?;
    bad["spec"]["schedule"] = json!("61 2 * * *");
    h.create_as::<BatchProcessor>(bad).await?;
    h.eventually("refused", |h| h.status(SEED)["phase"] == "Invalid")
        .await?;
    let ready = condition(&h.status(SEED), "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.schedule: field 1 (minute) \"61\""),
        "{message}"
    );
    assert!(
        h.get("batch/v1", "cronjobs", SEED).is_none(),
        "nothing applied"
    );
    assert_eq!(h.events("InvalidSpec").len(), 1);
    Ok(())
}

/// A thousand short-lived runs leave nothing growing: Jobs and pods stay within the history
/// limits and the status holds one run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_finished_runs_leave_flat_state() -> Result<()> {
    let mut batch = seed()?;
    batch["spec"]["parallelism"] = json!(1);
    batch["spec"]["successfulJobsHistoryLimit"] = json!(2);
    let h = start_with(batch).await?;
    h.workloads
        .set_default_termination_messages(vec![counts(1, 1, 0)]);
    for i in 0..1000 {
        let value = format!("run-{i}");
        h.run_now(SEED, &value).await?;
        let job = run_now_job_name(SEED, &value);
        h.eventually("the run recorded", |h| {
            last_run(h, SEED)["job"] == job.as_str()
        })
        .await?;
    }
    // A thousand Jobs' deletions and their pods' collection trail the last run; on a loaded
    // machine (the suite's other tests beside it) that takes longer than `eventually`'s 15 s.
    operator_harness::until(
        "history at its limit",
        std::time::Duration::from_secs(60),
        || h.jobs_of(SEED).len() <= 2,
    )
    .await?;
    assert!(h.server.objects("v1", "pods").len() <= 2);
    let status = serde_json::to_string(&h.status(SEED))?;
    assert!(status.len() < 4096, "{} bytes of status", status.len());
    Ok(())
}

/// The API server refuses it (the CRD's transition rule reads the stored `activeRun`), so the
/// rule holds with no webhook installed, as here.
#[tokio::test]
async fn where_runs_read_cannot_change_while_a_run_is_active() -> Result<()> {
    let h = start_with(seed()?).await?;
    h.workloads.set_default_job_outcome(JobOutcome::Hold);
    let run = h.trigger(SEED)?;
    h.eventually("the run active", |h| {
        h.status(SEED)["activeRun"]["job"] == run.as_str()
    })
    .await?;
    let to_blob = json!({"spec": {"input": {"type": "azureblob", "sftpConfig": null,
        "blobConfig": {"storageAccount": "incomingpayments", "container": "incoming", "secretName": "blob-credentials"}}}});
    let refused = h
        .merge::<BatchProcessor>(NS, SEED, to_blob.clone())
        .await
        .expect_err("refused while the run is active");
    let message = refused.to_string();
    assert!(
        message.contains("spec.input.type: Forbidden: cannot change from sftp to azureblob")
            && message.contains(&format!("while run {run} is active")),
        "{message}"
    );
    assert_eq!(
        h.batches().get(SEED).await?.spec.input.type_.as_str(),
        "sftp",
        "nothing was stored"
    );

    h.workloads.set_job_outcome(NS, &run, JobOutcome::Succeed);
    h.eventually("the run ended", |h| h.status(SEED)["activeRun"].is_null())
        .await?;
    h.merge::<BatchProcessor>(NS, SEED, to_blob).await?;
    assert_eq!(
        h.batches().get(SEED).await?.spec.input.type_.as_str(),
        "azureblob"
    );
    Ok(())
}

/// When the CronJob last fired comes from the operator's cache of its CronJobs: a converged
/// resync sends no request for it, and a firing still reaches the status.
#[tokio::test]
async fn a_converged_resync_reads_the_cron_job_without_a_request() -> Result<()> {
    let h = start_with(seed()?).await?;
    let stats = h.converged_resync_requests().await?;
    assert_eq!(
        stats.count(testkit::Verb::Get, "cronjobs"),
        0,
        "the CronJob read from the cache: {stats:?}"
    );
    assert_eq!(stats.writes(), 0, "{stats:?}");

    // The CronJob controller records a firing.
    let fired = "2026-12-07T02:00:00Z";
    kube::Api::<k8s_openapi::api::batch::v1::CronJob>::namespaced(h.client(), NS)
        .patch_status(
            SEED,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"status": {"lastScheduleTime": fired}})),
        )
        .await?;
    h.eventually("the firing in status", |h| {
        h.status(SEED)["lastScheduleTime"] == fired
    })
    .await?;
    Ok(())
}
