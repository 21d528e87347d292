//! The load `cargo xtask bench` puts on the operator, and the naive baseline its figures
//! are compared with: the same builders, every child and the status replaced on every pass.

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::jiff::Timestamp;
use operator_core::builder::WorkloadDefaults;
use operator_core::tooling::{BenchWorkload, ChildRef, SpecChange};
use operator_core::tooling::{NaiveBaseline, NaivePass, NaiveReconcile};
use serde_json::{json, to_value};

use crate::crd::BatchProcessor;
use crate::reconcile::observed_status;
use crate::resources::jobs::desired_cron_job;
use crate::runs;

/// N resources of the operator's kind, and the spec change the benchmark times.
pub(crate) const WORKLOAD: BenchWorkload = BenchWorkload {
    namespace: "payments",
    setup: &[],
    spec: || {
        json!({
            "schedule": "0 2 * * *",
            "image": "registry.example/batch-processor:1.2.0",
            "parallelism": 2,
            "input": {"type": "sftp", "sftpConfig": {"host": "sftp.example", "path": "/in/*.csv", "secretName": "sftp-credentials"}},
            "output": {"type": "azureblob", "blobConfig": {"storageAccount": "payments", "container": "processed", "secretName": "blob-credentials"}},
        })
    },
    change: SpecChange {
        patch: |n| json!({"spec": {"parallelism": n}}),
        child: |name| ChildRef::new("batch/v1", "cronjobs", name),
        shown: |cron, n| cron["spec"]["jobTemplate"]["spec"]["parallelism"].as_i64() == Some(n),
        first_target: 3,
        lower_bound: (2.0, "the CronJob, the status"),
    },
    lower_bound_converge: (2.0, "the CronJob, the status"),
    naive: Some(NaiveBaseline::of::<BatchProcessor>()),
};

/// The naive pass: the CronJob, and the status of a batch that has not run yet.
impl NaiveReconcile for BatchProcessor {
    type Observed = CronJob;

    fn naive_pass(&self, _cron_job: Option<CronJob>) -> Result<NaivePass, String> {
        let now = Timestamp::now();
        let cron_job = desired_cron_job(self, &WorkloadDefaults::default(), self.spec.suspend);
        let plan = runs::plan(self, &[], None, None, now);
        NaivePass::of(
            [to_value(&cron_job)],
            &observed_status(self, &plan, None, now),
        )
    }
}
