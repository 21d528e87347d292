//! The BatchProcessor operator on a real API server, running as its own ServiceAccount under
//! the RBAC deploy/ grants, with the real Job and CronJob controllers. The workers are the
//! stand-in kubelet's: each Job pod finishes 2 s after it starts with the termination message
//! `SIM_JOB_TERMINATION_MESSAGE` (`cargo xtask e2e --local` sets it), and fails when its image
//! contains `fail`. Skipped without `E2E_CLUSTER=1`.

use std::time::Duration;

use anyhow::{Context, Result};
use batch_processor::{retry_job_name, run_now_job_name};
use e2e::dashboards::every_panel_shows;
use e2e::operator::{Operator, OperatorProcess};
use e2e::scenario::{BATCH_PROCESSOR, condition, is_true, writes_over};
use e2e::{TestNamespace, until};
use k8s_openapi::api::batch::v1::CronJob;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

const OPERATOR: Operator = Operator::of(&batch_processor::OPERATOR);

const SEED: &str = "daily-payment-batch";

const OPERATOR_WRITES: [(&str, &str, &str); 5] = [
    ("payments.io", "batchprocessors", "status"),
    ("batch", "cronjobs", ""),
    ("batch", "jobs", ""),
    ("monitoring.coreos.com", "prometheusrules", ""),
    ("events.k8s.io", "events", ""),
];

async fn prepared(test: &str) -> Result<Option<TestNamespace>> {
    let Some(ns) = e2e::cluster(test).await? else {
        return Ok(None);
    };
    ns.grant(&OPERATOR).await?;
    Ok(Some(ns))
}

/// The seed's batch with two workers, one retry a second after a failure, and `image`.
fn small(batch: &mut Value, image: &str) {
    batch["spec"]["image"] = json!(image);
    batch["spec"]["parallelism"] = json!(2);
    batch["spec"]["retry"] = json!({"maxAttempts": 1, "backoffLimit": 0, "backoffSeconds": 1});
}

async fn run_now(ns: &TestNamespace, value: &str) -> Result<()> {
    ns.api(BATCH_PROCESSOR)
        .patch(
            SEED,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"payments.io/run-now": value}}})),
        )
        .await?;
    Ok(())
}

/// The operator running in a new namespace with the seed's batch (two workers of `image`)
/// created and Ready.
async fn ready_batch(test: &str, image: &str) -> Result<Option<(TestNamespace, OperatorProcess)>> {
    let Some(ns) = prepared(test).await? else {
        return Ok(None);
    };
    let operator = ns.start_operator(&OPERATOR, "a", true).await?;
    ns.create_sample(BATCH_PROCESSOR, SEED, |b| small(b, image))
        .await?;
    ns.status_until(
        BATCH_PROCESSOR,
        SEED,
        "Ready",
        Duration::from_secs(60),
        |s| is_true(s, "Ready"),
    )
    .await?;
    Ok(Some((ns, operator)))
}

/// One worker's counts as the stand-in kubelet reports them, if the run says.
fn worker_report() -> Option<Value> {
    serde_json::from_str(&std::env::var("SIM_JOB_TERMINATION_MESSAGE").ok()?).ok()
}

#[tokio::test]
async fn a_run_now_succeeds_with_the_workers_counts_goes_quiet_and_deletes_cleanly() -> Result<()> {
    let Some((ns, operator)) =
        ready_batch("bp-run", "registry.example/batch-processor:1.2.0").await?
    else {
        return Ok(());
    };
    let cron_jobs: Api<CronJob> = Api::namespaced(ns.client.clone(), &ns.name);
    let cron = cron_jobs.get(SEED).await?;
    let spec = cron.spec.clone().context("CronJob spec")?;
    assert_eq!(spec.schedule, "0 2 * * *");
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    assert_eq!(
        cron.metadata.owner_references.unwrap_or_default()[0].kind,
        "BatchProcessor"
    );

    run_now(&ns, "e2e-1").await?;
    let job = run_now_job_name(SEED, "e2e-1");
    let status = ns
        .status_until(
            BATCH_PROCESSOR,
            SEED,
            "the run recorded",
            Duration::from_secs(120),
            |s| s["lastRun"]["job"] == job.as_str(),
        )
        .await?;
    let run = &status["lastRun"];
    assert_eq!(run["status"], "Succeeded", "{status}");
    if let Some(report) = worker_report() {
        let processed = report["paymentsProcessed"].as_i64().unwrap_or_default();
        assert_eq!(
            run["paymentsProcessed"],
            processed * 2,
            "two workers summed"
        );
    }
    assert!(is_true(&status, "LastRunSucceeded"), "{status}");
    assert_eq!(status["lastRunNow"], "e2e-1");
    // The dashboard shows the run, and the fleet's shows the operator.
    every_panel_shows(&batch_processor::OPERATOR, &operator, &ns.name, &[]).await?;

    let quiet = writes_over(
        &ns.client,
        &OPERATOR_WRITES,
        Duration::from_secs(8),
        Duration::from_secs(11),
    )
    .await?;
    println!("batch-processor: writes over two converged resyncs: {quiet:?}");
    assert!(quiet.is_empty(), "a converged operator wrote: {quiet:?}");

    // No finalizer: the batch goes at once, and the garbage collector takes its CronJob and
    // Jobs (and their pods).
    ns.api(BATCH_PROCESSOR)
        .delete(SEED, &DeleteParams::default())
        .await?;
    ns.until_none_left(
        &[
            ("batch", "v1", "CronJob", "cronjobs"),
            ("batch", "v1", "Job", "jobs"),
        ],
        Duration::from_secs(60),
    )
    .await?;
    operator.assert_no_rbac_denials()?;
    ns.cleanup().await
}

#[tokio::test]
async fn a_failing_run_is_retried_then_reported_failed() -> Result<()> {
    let Some((ns, operator)) = ready_batch("bp-fail", "registry.example/batch-fail:1.2.0").await?
    else {
        return Ok(());
    };
    run_now(&ns, "e2e-fail").await?;
    let first = run_now_job_name(SEED, "e2e-fail");
    let retry = retry_job_name(&first, 2);
    let status = ns
        .status_until(
            BATCH_PROCESSOR,
            SEED,
            "the retry recorded",
            Duration::from_secs(180),
            |s| s["lastRun"]["job"] == retry.as_str(),
        )
        .await?;
    let run = &status["lastRun"];
    assert_eq!(run["status"], "Failed", "{status}");
    assert_eq!(run["attempt"], 2);
    assert!(
        run["message"]
            .as_str()
            .is_some_and(|m| m.contains("the Job failed")),
        "{run}"
    );
    assert!(
        status["pendingRetry"].is_null(),
        "no attempt left: {status}"
    );
    let last = condition(&status, "LastRunSucceeded");
    assert_eq!(last["status"], "False");
    assert_eq!(last["reason"], "RunFailed");
    let cron_jobs: Api<CronJob> = Api::namespaced(ns.client.clone(), &ns.name);
    until("the schedule resumed", Duration::from_secs(30), || async {
        Ok(cron_jobs
            .get(SEED)
            .await?
            .spec
            .filter(|s| s.suspend == Some(false)))
    })
    .await?;
    operator.assert_no_rbac_denials()?;
    ns.cleanup().await
}

/// Another team's object with any of the sample's child names is never changed, adopted,
/// scaled, mounted, selected or deleted, on create, update and delete of a resource, and the
/// resource's status names it (operator-harness's foreign-object check, on a real server).
#[tokio::test]
async fn another_teams_objects_are_never_touched() -> Result<()> {
    let Some(ns) = prepared("bp-foreign").await? else {
        return Ok(());
    };
    let operator = ns.start_operator(&OPERATOR, "a", false).await?;
    let probe = ns.sample_json(BATCH_PROCESSOR, SEED, |b| {
        small(b, "registry.example/batch-processor:1.2.0")
    })?;
    crate::foreign::never_touched(ns, operator, &batch_processor::OPERATOR, probe, &[]).await
}
