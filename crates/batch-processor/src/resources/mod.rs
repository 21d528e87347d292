//! One pure builder per child kind: the `BatchProcessor` and the operator's workload defaults
//! in, the desired object out. No client, no clock.

pub mod jobs;
pub mod prometheus_rule;

use std::collections::BTreeMap;

use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;

use crate::crd::BatchProcessor;

/// The label every Job and worker pod of a batch carries: the batch's name.
pub const BATCH_LABEL: &str = "payments.io/batch-processor";
/// On the operator's Jobs: the run a retry belongs to.
pub const RUN_LABEL: &str = "payments.io/run";
/// On the operator's Jobs: the attempt number.
pub const ATTEMPT_LABEL: &str = "payments.io/attempt";
/// The name of the worker container, whose termination message carries the counts.
pub const WORKER_CONTAINER: &str = "worker";

/// Labels on every child (the standard `app.kubernetes.io/*` ones are added when applied):
/// the operator's `defaultLabels`, then the batch's own.
pub fn child_labels(bp: &BatchProcessor, defaults: &WorkloadDefaults) -> BTreeMap<String, String> {
    defaults.labels([(BATCH_LABEL, bp.name_any())])
}
