//! The batch's run metrics, what the alerts read: per batch (labelled by namespace and name,
//! by design: each is a per-resource gauge, removed when the batch is gone — swept, as the
//! operator has no finalizer), `batch_processor_last_run_payments{result}`,
//! `batch_processor_last_run_duration_seconds`, `batch_processor_last_run_failed` and
//! `batch_processor_last_schedule_timestamp_seconds`; across batches,
//! `batch_processor_runs_total{result}` counting recorded attempts (succeeded, retried, failed).

use operator_core::metrics::{Metrics, ResourceGauge, ResourceGaugeF64};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::crd::{BatchProcessor, BatchProcessorStatus, RunStatus};
use crate::runs::Outcome;
use operator_core::dashboard::PanelKind::{Table, TimeSeries};
use operator_core::dashboard::{Row, panel, per_resource, per_resource_by, q};

/// Each batch's runs: how they ended, what the last one processed, when one was last
/// scheduled.
pub const DASHBOARD: &[Row] = &[Row {
    title: "Batches",
    panels: &[
        panel(
            "Finished attempts by result (1h)",
            TimeSeries,
            "short",
            &[q(
                r#"sum by (result) (increase(batch_processor_runs_total{job=~"$job"}[1h]))"#,
                "{{result}}",
            )],
        ),
        panel(
            "Last run's payments",
            Table,
            "short",
            &[per_resource_by(
                "batch_processor_last_run_payments",
                "result",
                "",
            )],
        ),
        panel(
            "Last run: duration, outcome, since scheduled",
            Table,
            "s",
            &[
                per_resource("batch_processor_last_run_duration_seconds", "seconds"),
                per_resource("batch_processor_last_run_failed", "failed"),
                q(
                    r#"time() - max by (namespace, name) (batch_processor_last_schedule_timestamp_seconds{namespace=~"$namespace"})"#,
                    "{{namespace}}/{{name}} since scheduled",
                ),
            ],
        ),
    ],
}];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug)]
pub struct BatchMetrics {
    payments: ResourceGauge<BatchProcessor>,
    duration: ResourceGaugeF64<BatchProcessor>,
    failed: ResourceGauge<BatchProcessor>,
    last_schedule: ResourceGauge<BatchProcessor>,
    runs: Family<ResultLabels, Counter>,
}

impl BatchMetrics {
    /// Creates the metrics in the runtime's registry; a batch's series go with the batch.
    pub fn register(metrics: &Metrics) -> Self {
        let runs = Family::default();
        metrics.register(
            "batch_processor_runs",
            "Finished attempts of every batch, by result (succeeded, retried, failed)",
            runs.clone(),
        );
        Self {
            payments: metrics.resource_gauge_by(
                "batch_processor_last_run_payments",
                "Payments of the batch's last finished attempt, by result (processed, succeeded, failed)",
                "result",
            ),
            duration: metrics.resource_gauge(
                "batch_processor_last_run_duration_seconds",
                "How long the batch's last finished attempt ran",
            ),
            failed: metrics.resource_gauge(
                "batch_processor_last_run_failed",
                "1 when the batch's last run failed after its last attempt, 0 otherwise",
            ),
            last_schedule: metrics.resource_gauge(
                "batch_processor_last_schedule_timestamp_seconds",
                "When the batch's CronJob last started a scheduled run (Unix seconds)",
            ),
            runs,
        }
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
        if !bp.spec.metrics_enabled() {
            for gauge in [&self.payments, &self.failed, &self.last_schedule] {
                gauge.forget(bp);
            }
            self.duration.forget(bp);
            return;
        }
        if let Some(t) = &status.last_schedule_time {
            self.last_schedule.of(bp).set(t.0.as_second());
        }
        let last_run = status.last_run.as_ref();
        let final_failure = last_run.is_some_and(|r| r.status == RunStatus::Failed)
            && status.pending_retry.is_none()
            && status.active_run.is_none();
        self.failed.of(bp).set(i64::from(final_failure));
        let Some(run) = last_run else { return };
        let payments = [
            ("processed", run.payments_processed),
            ("succeeded", run.payments_succeeded),
            ("failed", run.payments_failed),
        ];
        for (result, value) in payments {
            self.payments.of_labelled(bp, result).set(value);
        }
        if let (Some(start), Some(end)) = (&run.start_time, &run.completion_time) {
            let seconds = start.0.duration_until(end.0).as_secs_f64().max(0.0);
            self.duration.of(bp).set(seconds);
        }
    }
}
