//! The BatchProcessor harness: the shared one (`operator-harness`) with the CRD and the
//! `payments` namespace, and helpers for the seed's batch, its runs and their reports.

use anyhow::{Context as _, Result};
use batch_processor::controllers;
pub use batch_processor::crd::BatchProcessor;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams};
use operator_core::tooling::ChildRef;
#[allow(unused_imports)]
pub use operator_harness::condition;
use operator_harness::conformance::{self, Subject};
pub use operator_harness::{Harness, HarnessBuilder};
use serde_json::{Value, json};

pub const NS: &str = "payments";
pub const SEED: &str = "daily-payment-batch";

pub fn cluster() -> HarnessBuilder {
    Harness::builder(controllers)
        .crd(BatchProcessor::crd())
        .namespace(NS)
        .resource("payments.io/v1", "batchprocessors")
}

pub async fn start() -> Result<Harness> {
    cluster().start().await
}

/// A worker's termination message.
pub fn counts(processed: i64, succeeded: i64, failed: i64) -> String {
    json!({"paymentsProcessed": processed, "paymentsSucceeded": succeeded, "paymentsFailed": failed})
        .to_string()
}

/// The seed's batch as a value, to change before creating it.
pub fn seed() -> Result<Value> {
    operator_harness::sample(SEED)
}

/// A running operator with `batch` created and Ready.
pub async fn start_with(batch: Value) -> Result<Harness> {
    let h = start().await?;
    h.create_ready::<BatchProcessor>(batch).await?;
    Ok(h)
}

/// The BatchProcessor view of a harness.
pub trait Batches {
    fn batches(&self) -> Api<BatchProcessor>;
    fn status(&self, name: &str) -> Value;
    fn jobs_of(&self, batch: &str) -> Vec<Value>;
    /// Starts a scheduled run now, as the CronJob controller would at its time.
    fn trigger(&self, batch: &str) -> Result<String>;
    /// Asks for a run now, as `kubectl annotate bp NAME payments.io/run-now=VALUE` does.
    async fn run_now(&self, batch: &str, value: &str) -> Result<()>;
}

impl Batches for Harness {
    fn batches(&self) -> Api<BatchProcessor> {
        Api::namespaced(self.client(), NS)
    }

    fn status(&self, name: &str) -> Value {
        self.status_of(name)
    }

    fn jobs_of(&self, batch: &str) -> Vec<Value> {
        self.server
            .objects("batch/v1", "jobs")
            .into_iter()
            .filter(|j| j["metadata"]["labels"]["payments.io/batch-processor"] == batch)
            .collect()
    }

    fn trigger(&self, batch: &str) -> Result<String> {
        self.workloads
            .trigger_cronjob(NS, batch)
            .context("the CronJob could not start a Job")
    }

    async fn run_now(&self, batch: &str, value: &str) -> Result<()> {
        let patch = json!({"metadata": {"annotations": {"payments.io/run-now": value}}});
        self.batches()
            .patch(batch, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}

pub fn last_run(h: &Harness, name: &str) -> Value {
    h.status(name)["lastRun"].clone()
}

/// The i-th batch of the conformance and fault tests: a schedule that does not come due
/// while they run.
pub fn batch(i: usize) -> Value {
    let spec = json!({
        "schedule": "0 2 1 1 *",
        "image": "registry.example/batch:1.0",
        "parallelism": 1 + i % 3,
        "input": {"type": "sftp", "sftpConfig": {"host": "sftp.example", "path": "/in/*.csv", "secretName": "sftp-credentials"}},
        "output": {"type": "azureblob", "blobConfig": {"storageAccount": "payments", "container": "processed", "secretName": "blob-credentials"}}
    });
    operator_harness::resource::<BatchProcessor>(&format!("batch-{i:03}"), NS, spec)
}

/// The operator, as the conformance checks exercise it.
pub const CONFORMANCE: Subject = Subject {
    operator: &batch_processor::OPERATOR,
    harness: cluster,
    resource: batch,
    children: |name, _| vec![ChildRef::new("batch/v1", "cronjobs", name)],
    kept_after_deletion: conformance::none,
    used_as_found: conformance::none,
    written_by_others: &["cronjobs", "jobs"],
};
