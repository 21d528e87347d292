//! controller-runtime's work-queue series (`workqueue_*`), its concurrency and panic series
//! (`controller_runtime_max_concurrent_reconciles`, `controller_runtime_reconcile_panics_total`)
//! and the reconcile timer, under the names and labels the dashboards and alerts platform
//! teams already run for Go operators read.
//!
//! An object is *queued* when it is due for a reconcile (a watch event, a requeue, a retry)
//! and not already being reconciled; it waits there for one of the controller's workers.
//! What happens to it then is the *work*.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::{ControllerLabels, Metrics};

/// client-go's labels: the queue's `name`, which controller-runtime sets to the controller's,
/// and the `controller` it feeds.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    name: String,
    controller: String,
}

impl QueueLabels {
    fn of(controller: &str) -> Self {
        Self {
            name: controller.to_string(),
            controller: controller.to_string(),
        }
    }
}

/// The work in progress, per controller: when each running reconcile started.
#[derive(Clone, Debug, Default)]
struct InFlight {
    started: Arc<Mutex<HashMap<String, HashMap<u64, Instant>>>>,
    next: Arc<AtomicU64>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<u64, Instant>>> {
        self.started.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `controller`'s gauges exist (at 0) before its first reconcile.
    fn declare(&self, controller: &str) {
        self.lock().entry(controller.to_string()).or_default();
    }

    fn start(&self, controller: &str) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(controller.to_string())
            .or_default()
            .insert(id, Instant::now());
        id
    }

    fn finish(&self, controller: &str, id: u64) {
        if let Some(running) = self.lock().get_mut(controller) {
            running.remove(&id);
        }
    }

    /// Per controller: the seconds of work in progress (summed over running reconciles),
    /// and the longest a running one has run.
    fn ages(&self) -> Vec<WorkAges> {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|(controller, running)| {
                let ages = running.values().map(|start| (now - *start).as_secs_f64());
                let (unfinished, longest) = ages.fold((0.0, 0.0_f64), |(sum, most), age| {
                    (sum + age, most.max(age))
                });
                WorkAges {
                    labels: QueueLabels::of(controller),
                    unfinished,
                    longest,
                }
            })
            .collect()
    }
}

/// One controller's work in progress, in seconds.
struct WorkAges {
    labels: QueueLabels,
    unfinished: f64,
    longest: f64,
}

/// Encodes one gauge family of `ages`.
fn encode_ages(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    ages: &[WorkAges],
    value: impl Fn(&WorkAges) -> f64,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for age in ages {
        ConstGauge::new(value(age)).encode(family.encode_family(&age.labels)?)?;
    }
    Ok(())
}

impl Collector for InFlight {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ages = self.ages();
        encode_ages(
            &mut encoder,
            COLLECTED_SERIES[0],
            "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads.",
            &ages,
            |a| a.unfinished,
        )?;
        encode_ages(
            &mut encoder,
            COLLECTED_SERIES[1],
            "How many seconds has the longest running processor for workqueue been running.",
            &ages,
            |a| a.longest,
        )
    }
}

/// The families behind the work-queue series, registered once per [`Metrics`].
#[derive(Clone, Debug)]
pub(super) struct WorkQueueMetrics {
    depth: Family<QueueLabels, Gauge>,
    adds: Family<QueueLabels, Counter>,
    queue_duration: Family<QueueLabels, Histogram>,
    work_duration: Family<QueueLabels, Histogram>,
    retries: Family<QueueLabels, Counter>,
    max_concurrent: Family<ControllerLabels, Gauge>,
    panics: Family<ControllerLabels, Counter>,
    in_flight: InFlight,
}

/// client-go's buckets for both durations: 10 ns to 1,000 s, by tens.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-8, 10.0, 12))
}

/// The series the in-flight collector exports (not registered as families).
pub(super) const COLLECTED_SERIES: [&str; 2] = [
    "workqueue_unfinished_work_seconds",
    "workqueue_longest_running_processor_seconds",
];

impl WorkQueueMetrics {
    pub(super) fn new() -> Self {
        Self {
            depth: Family::default(),
            adds: Family::default(),
            queue_duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            work_duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            retries: Family::default(),
            max_concurrent: Family::default(),
            panics: Family::default(),
            in_flight: InFlight::default(),
        }
    }

    pub(super) fn register(&self, metrics: &Metrics) {
        let queue = self;
        metrics.register(
            "workqueue_depth",
            "Current depth of workqueue",
            queue.depth.clone(),
        );
        metrics.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            queue.adds.clone(),
        );
        metrics.register(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            queue.queue_duration.clone(),
        );
        metrics.register(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            queue.work_duration.clone(),
        );
        metrics.register(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            queue.retries.clone(),
        );
        metrics.register(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            queue.max_concurrent.clone(),
        );
        metrics.register(
            "controller_runtime_reconcile_panics",
            "Total number of reconciliation panics per controller",
            queue.panics.clone(),
        );
        metrics.register_collector(Box::new(queue.in_flight.clone()));
    }
}

impl Metrics {
    /// Declares `controller` with at most `workers` reconciles at once: its series exist, at
    /// zero, before its first object is queued.
    pub fn declare_controller(&self, controller: &str, workers: u16) {
        let labels = QueueLabels::of(controller);
        let queue = &self.workqueue;
        queue
            .max_concurrent
            .get_or_create(&controller_labels(controller))
            .set(i64::from(workers));
        // A family shows a series once it is created; creating is all these need.
        let _ = queue.depth.get_or_create(&labels);
        let _ = queue.adds.get_or_create(&labels);
        let _ = queue.retries.get_or_create(&labels);
        let _ = queue.queue_duration.get_or_create(&labels);
        let _ = queue.work_duration.get_or_create(&labels);
        let _ = queue.panics.get_or_create(&controller_labels(controller));
        queue.in_flight.declare(controller);
    }

    /// An object of `controller` is due for a reconcile; it waits for a worker until
    /// [`Queued::start`] (or leaves the queue unreconciled when the guard is dropped).
    pub fn queued(&self, controller: &str) -> Queued {
        let labels = QueueLabels::of(controller);
        self.workqueue.adds.get_or_create(&labels).inc();
        self.workqueue.depth.get_or_create(&labels).inc();
        Queued {
            metrics: self.clone(),
            labels,
            since: Instant::now(),
        }
    }

    /// A failed reconcile of `controller` is queued again after its backoff.
    pub fn record_retry(&self, controller: &str) {
        self.workqueue
            .retries
            .get_or_create(&QueueLabels::of(controller))
            .inc();
    }

    /// A reconcile of `controller` panicked (it was caught and retried).
    pub fn record_panic(&self, controller: &str) {
        self.workqueue
            .panics
            .get_or_create(&controller_labels(controller))
            .inc();
    }
}

fn controller_labels(controller: &str) -> ControllerLabels {
    ControllerLabels {
        controller: controller.to_string(),
    }
}

/// An object waiting in the queue.
#[derive(Debug)]
pub struct Queued {
    metrics: Metrics,
    labels: QueueLabels,
    since: Instant,
}

impl Queued {
    /// A worker took the object: its wait is recorded, its reconcile timed until the returned
    /// guard drops.
    pub fn start(self) -> ReconcileTimer {
        let queue = &self.metrics.workqueue;
        queue
            .queue_duration
            .get_or_create(&self.labels)
            .observe(self.since.elapsed().as_secs_f64());
        let controller = controller_labels(&self.labels.controller);
        self.metrics.active_workers.get_or_create(&controller).inc();
        let id = queue.in_flight.start(&self.labels.controller);
        ReconcileTimer {
            metrics: self.metrics.clone(),
            labels: self.labels.clone(),
            id,
            start: Instant::now(),
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.metrics
            .workqueue
            .depth
            .get_or_create(&self.labels)
            .dec();
    }
}

/// Records a reconcile's duration and frees its worker slot when dropped, so a panicking or
/// cancelled reconcile is still accounted for.
#[derive(Debug)]
pub struct ReconcileTimer {
    metrics: Metrics,
    labels: QueueLabels,
    id: u64,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed().as_secs_f64();
        let controller = controller_labels(&self.labels.controller);
        self.metrics.active_workers.get_or_create(&controller).dec();
        self.metrics
            .reconcile_time
            .get_or_create(&controller)
            .observe(elapsed);
        let queue = &self.metrics.workqueue;
        queue
            .work_duration
            .get_or_create(&self.labels)
            .observe(elapsed);
        queue.in_flight.finish(&self.labels.controller, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn a_declared_controller_exports_every_series_at_zero() {
        let m = Metrics::new();
        m.declare_controller("batchprocessor", 8);
        let text = m.encode();
        let labels = r#"{name="batchprocessor",controller="batchprocessor"}"#;
        for series in [
            "workqueue_depth",
            "workqueue_adds_total",
            "workqueue_retries_total",
            "workqueue_queue_duration_seconds_count",
            "workqueue_work_duration_seconds_count",
            "workqueue_unfinished_work_seconds",
            "workqueue_longest_running_processor_seconds",
        ] {
            assert_eq!(
                sample(&text, &format!("{series}{labels}")),
                Some(0.0),
                "{series} in\n{text}"
            );
        }
        let controller = r#"{controller="batchprocessor"}"#;
        assert_eq!(
            sample(
                &text,
                &format!("controller_runtime_max_concurrent_reconciles{controller}")
            ),
            Some(8.0)
        );
        assert_eq!(
            sample(
                &text,
                &format!("controller_runtime_reconcile_panics_total{controller}")
            ),
            Some(0.0)
        );
        let names = m.series_names();
        assert!(names.contains("workqueue_longest_running_processor_seconds"));
        assert!(names.contains("workqueue_queue_duration_seconds_bucket"));
    }

    #[test]
    fn an_object_is_queued_then_worked_then_gone_from_both() {
        let m = Metrics::new();
        let labels = r#"{name="saga",controller="saga"}"#;
        let waiting = m.queued("saga");
        let skipped = m.queued("saga");
        assert_eq!(
            sample(&m.encode(), &format!("workqueue_depth{labels}")),
            Some(2.0)
        );
        drop(skipped);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let working = waiting.start();
        let text = m.encode();
        assert_eq!(
            sample(&text, &format!("workqueue_depth{labels}")),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, &format!("workqueue_adds_total{labels}")),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"controller_runtime_active_workers{controller="saga"}"#
            ),
            Some(1.0)
        );
        let waited = sample(
            &text,
            &format!("workqueue_queue_duration_seconds_sum{labels}"),
        );
        assert!(waited.is_some_and(|w| w >= 0.02), "{waited:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let text = m.encode();
        let unfinished = sample(&text, &format!("workqueue_unfinished_work_seconds{labels}"));
        let longest = sample(
            &text,
            &format!("workqueue_longest_running_processor_seconds{labels}"),
        );
        assert!(unfinished.is_some_and(|u| u >= 0.02), "{unfinished:?}");
        assert_eq!(unfinished, longest, "one reconcile running");
        drop(working);
        m.record_retry("saga");
        m.record_panic("saga");
        let text = m.encode();
        assert_eq!(
            sample(&text, &format!("workqueue_unfinished_work_seconds{labels}")),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                &format!("workqueue_work_duration_seconds_count{labels}")
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"controller_runtime_reconcile_time_seconds_count{controller="saga"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, &format!("workqueue_retries_total{labels}")),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"controller_runtime_reconcile_panics_total{controller="saga"}"#
            ),
            Some(1.0)
        );
    }
}
