//! The BatchProcessor operator: seed 000's "Custom Batch Processor Operator" made real.
//!
//! For each `BatchProcessor` it runs the CronJob `<name>` (an Indexed Job of `parallelism`
//! workers per run), runs a failed run again as a whole up to `retry.maxAttempts` times with
//! exponential backoff, starts a run on request (`payments.io/run-now`), sums the workers'
//! reports into `status.lastRun`, fails a run over `failedPaymentsThreshold`, deletes history
//! beyond the limits, exports run metrics and, when asked, writes a PrometheusRule that alerts
//! on a failed or overdue run. It has no finalizer: deleting a batch (or its namespace) never
//! waits on the operator.

mod admission;
mod bench;
pub mod crd;
mod metrics;
mod reconcile;
mod report;
mod resources;
mod runs;
mod validate;

pub use reconcile::RUN_NOW_ANNOTATION;
pub use runs::{retry_job_name, run_now_job_name};

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::runtime::watcher;
use operator_core::descriptor::{Converged, ServedResource};
use operator_core::monitoring::PrometheusRule;
use operator_core::runtime::Runtime;
use operator_core::runtime::config::OperatorSettings;
use operator_core::{ChildKinds, ChildWatches, Prune};

use crate::crd::BatchProcessor;
use crate::metrics::BatchMetrics;
use crate::reconcile::BatchOperator;
use operator_core::annotations::ReadAnnotation;

/// The annotations a BatchProcessor's operator reads (see docs/batch-processor.md).
pub const ANNOTATIONS: &[ReadAnnotation] = &[ReadAnnotation {
    key: RUN_NOW_ANNOTATION,
    accepts: "any new, non-empty value (such as $(date +%s)); each value starts one run",
    valid: |v| !v.trim().is_empty(),
}];

operator_core::operator! {
    binary: ("batch-processor-operator", "batchProcessor", OperatorSettings::NONE),
    resources: &[ServedResource::of::<BatchProcessor>(Converged::Ready)],
    controllers: controllers,
    metrics: BatchMetrics,
}

/// The child kinds of a BatchProcessor, declared once. The operator's own Jobs (retries,
/// run-now) are never pruned by a pass — the history limits delete them — and the
/// PrometheusRule exists only where the Prometheus Operator is installed. The CronJob's state
/// (when it last fired) is cached too, for the pass to read.
pub fn child_kinds(rt: &Runtime) -> (ChildKinds, ChildWatches) {
    rt.child_kinds(IDENTITY)
        .kind::<CronJob>(Prune::Yes)
        .kind::<Job>(Prune::Never)
        .optional_kind::<PrometheusRule>()
        .observed::<CronJob>()
        .build()
}

/// The controller for `BatchProcessor`: its CronJob and Jobs as children, and every Job of a
/// batch (the CronJob's ones too, found by the batch label) in a cache of their status. `now`
/// is the clock (tests move it past a retry's backoff).
pub fn controllers(rt: &Runtime) -> Vec<BoxFuture<'static, ()>> {
    let batch_jobs = watcher::Config::default().labels(resources::BATCH_LABEL);
    let (jobs, job_stream) = rt.cached(batch_jobs, reconcile::compact_job);
    let operator = BatchOperator {
        jobs,
        metrics: BatchMetrics::register(rt.metrics()),
    };
    let controller = rt
        .operator_controller::<BatchProcessor, _>(IDENTITY, operator, child_kinds(rt))
        .watches_stream(job_stream, |job| reconcile::batch_of(&job));
    vec![controller.run(reconcile::reconcile).boxed()]
}
