//! The batch's run metrics, what the alerts read: per batch (labelled by namespace and name,
//! by design: each is a per-resource gauge, removed when the batch is gone — swept, as the
//! operator has no finalizer), `batch_processor_last_run_payments{result}`,
//! `batch_processor_last_run_duration_seconds`, `batch_processor_last_run_failed` and
//! `batch_processor_last_schedule_timestamp_seconds`; across batches,
//! `batch_processor_runs_total{result}` counting recorded attempts (succeeded, retried, failed).

use std::sync::atomic::AtomicU64;

use kube::ResourceExt;
use operator_core::metrics::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::crd::{BatchProcessor, BatchProcessorStatus, RunStatus};
use crate::runs::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BatchLabels {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PaymentLabels {
    namespace: String,
    name: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

const PAYMENT_RESULTS: [&str; 3] = ["processed", "succeeded", "failed"];

#[derive(Clone, Debug, Default)]
pub struct BatchMetrics {
    payments: Family<PaymentLabels, Gauge>,
    duration: Family<BatchLabels, Gauge<f64, AtomicU64>>,
    failed: Family<BatchLabels, Gauge>,
    last_schedule: Family<BatchLabels, Gauge>,
    runs: Family<ResultLabels, Counter>,
}

impl BatchMetrics {
    /// Creates the metrics in the runtime's registry; a batch's series go with the batch.
    pub fn register(metrics: &Metrics) -> Self {
        let m = Self::default();
        metrics.register(
            "batch_processor_last_run_payments",
            "Payments of the batch's last finished attempt, by result (processed, succeeded, failed)",
            m.payments.clone(),
        );
        metrics.register(
            "batch_processor_last_run_duration_seconds",
            "How long the batch's last finished attempt ran",
            m.duration.clone(),
        );
        metrics.register(
            "batch_processor_last_run_failed",
            "1 when the batch's last run failed after its last attempt, 0 otherwise",
            m.failed.clone(),
        );
        metrics.register(
            "batch_processor_last_schedule_timestamp_seconds",
            "When the batch's CronJob last started a scheduled run (Unix seconds)",
            m.last_schedule.clone(),
        );
        metrics.register(
            "batch_processor_runs",
            "Finished attempts of every batch, by result (succeeded, retried, failed)",
            m.runs.clone(),
        );
        let gone = m.clone();
        metrics.on_resource_gone(crate::CONTROLLER, move |ns, name| gone.forget(ns, name));
        m
    }

    /// Counts an attempt recorded this pass.
    pub fn recorded(&self, outcome: &Outcome) {
        let result = match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Retrying(_) => "retried",
            Outcome::Failed => "failed",
        };
        self.runs.get_or_create(&ResultLabels { result }).inc();
    }

    /// Sets the batch's gauges from the status just written; none when `monitoring.enabled`
    /// is false. A run counts as failed once no attempt of it is left (none waits or runs).
    pub fn observe(&self, bp: &BatchProcessor, status: &BatchProcessorStatus) {
        let (namespace, name) = (bp.namespace().unwrap_or_default(), bp.name_any());
        if !bp.spec.metrics_enabled() {
            self.forget(&namespace, &name);
            return;
        }
        let labels = BatchLabels {
            namespace: namespace.clone(),
            name: name.clone(),
        };
        if let Some(t) = &status.last_schedule_time {
            self.last_schedule
                .get_or_create(&labels)
                .set(t.0.as_second());
        }
        let last_run = status.last_run.as_ref();
        let final_failure = last_run.is_some_and(|r| r.status == RunStatus::Failed)
            && status.pending_retry.is_none()
            && status.active_run.is_none();
        self.failed
            .get_or_create(&labels)
            .set(i64::from(final_failure));
        let Some(run) = last_run else { return };
        for (result, value) in PAYMENT_RESULTS.into_iter().zip([
            run.payments_processed,
            run.payments_succeeded,
            run.payments_failed,
        ]) {
            self.payments
                .get_or_create(&PaymentLabels {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    result,
                })
                .set(value);
        }
        if let (Some(start), Some(end)) = (&run.start_time, &run.completion_time) {
            let seconds = start.0.duration_until(end.0).as_secs_f64().max(0.0);
            self.duration.get_or_create(&labels).set(seconds);
        }
    }

    fn forget(&self, namespace: &str, name: &str) {
        let labels = BatchLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        for result in PAYMENT_RESULTS {
            self.payments.remove(&PaymentLabels {
                namespace: namespace.into(),
                name: name.into(),
                result,
            });
        }
        self.duration.remove(&labels);
        self.failed.remove(&labels);
        self.last_schedule.remove(&labels);
    }
}
