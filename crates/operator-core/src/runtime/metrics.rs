//! Prometheus metrics under the names dashboards and the seeds' alerts already use
//! (`controller_runtime_*`, `leader_election_master_status`), plus process metrics, in one
//! registry that operators add their domain gauges to.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a reconcile ended, as `controller_runtime_reconcile_total{result}` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconcileResult {
    /// Converged: nothing asked for before the next resync.
    Success,
    /// Failed; retried with backoff.
    Error,
    /// Asked to run again at once.
    Requeue,
    /// Asked to run again after a delay shorter than the resync.
    RequeueAfter,
}

impl ReconcileResult {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Requeue => "requeue",
            Self::RequeueAfter => "requeue_after",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    name: String,
}

/// The metrics every operator exports. Cheap to clone; clones share the registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    reconcile_total: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ControllerLabels, Counter>,
    reconcile_time: Family<ControllerLabels, Histogram>,
    active_workers: Family<ControllerLabels, Gauge>,
    leader: Family<LeaseLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconcile_total = Family::<ResultLabels, Counter>::default();
        let reconcile_errors = Family::<ControllerLabels, Counter>::default();
        let reconcile_time = Family::<ControllerLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.005, 2.0, 14))) as fn() -> Histogram,
        );
        let active_workers = Family::<ControllerLabels, Gauge>::default();
        let leader = Family::<LeaseLabels, Gauge>::default();
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            reconcile_total.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            reconcile_errors.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            reconcile_time.clone(),
        );
        registry.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            active_workers.clone(),
        );
        registry.register(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master",
            leader.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        Self {
            registry: Arc::new(Mutex::new(registry)),
            reconcile_total,
            reconcile_errors,
            reconcile_time,
            active_workers,
            leader,
        }
    }

    /// Registers an operator's own metric (e.g. `trading_algorithm_daily_pnl`).
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(name, help, metric);
    }

    /// A reconcile of `controller` started; the returned guard records it when dropped.
    pub fn reconcile_started(&self, controller: &str) -> ReconcileTimer {
        let labels = ControllerLabels {
            controller: controller.to_string(),
        };
        self.active_workers.get_or_create(&labels).inc();
        ReconcileTimer {
            metrics: self.clone(),
            labels,
            start: std::time::Instant::now(),
        }
    }

    pub fn record_result(&self, controller: &str, result: ReconcileResult) {
        self.reconcile_total
            .get_or_create(&ResultLabels {
                controller: controller.to_string(),
                result: result.as_str().to_string(),
            })
            .inc();
        if result == ReconcileResult::Error {
            self.reconcile_errors
                .get_or_create(&ControllerLabels {
                    controller: controller.to_string(),
                })
                .inc();
        }
    }

    pub fn set_leader(&self, lease: &str, leading: bool) {
        self.leader
            .get_or_create(&LeaseLabels {
                name: lease.to_string(),
            })
            .set(i64::from(leading));
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(%error, "encoding metrics");
        }
        out
    }
}

/// Records a reconcile's duration and frees its worker slot when dropped, so a panicking or
/// cancelled reconcile is still accounted for.
#[derive(Debug)]
pub struct ReconcileTimer {
    metrics: Metrics,
    labels: ControllerLabels,
    start: std::time::Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .active_workers
            .get_or_create(&self.labels)
            .dec();
        self.metrics
            .reconcile_time
            .get_or_create(&self.labels)
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// `process_*` metrics from `/proc/self` (Linux; absent elsewhere).
#[derive(Debug)]
struct ProcessCollector;

fn proc_stat() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks_per_second = 100.0;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let rss_pages: f64 = fields.get(21)?.parse().ok()?;
    Some(((utime + stime) / ticks_per_second, rss_pages * 4096.0))
}

fn open_fds() -> Option<i64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as i64)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some((cpu_seconds, rss_bytes)) = proc_stat() {
            let cpu = ConstCounter::new(cpu_seconds);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                cpu.metric_type(),
            )?)?;
            let rss = ConstGauge::new(rss_bytes);
            rss.encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                None,
                rss.metric_type(),
            )?)?;
        }
        if let Some(fds) = open_fds() {
            let gauge = ConstGauge::new(fds);
            gauge.encode(encoder.encode_descriptor(
                "process_open_fds",
                "Number of open file descriptors",
                None,
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_the_ones_dashboards_use() {
        let m = Metrics::new();
        {
            let _timer = m.reconcile_started("tradingalgorithm");
        }
        m.record_result("tradingalgorithm", ReconcileResult::Success);
        m.record_result("tradingalgorithm", ReconcileResult::Error);
        m.set_leader("trading-operator-leader", true);
        let text = m.encode();
        for expected in [
            r#"controller_runtime_reconcile_total{controller="tradingalgorithm",result="success"} 1"#,
            r#"controller_runtime_reconcile_total{controller="tradingalgorithm",result="error"} 1"#,
            r#"controller_runtime_reconcile_errors_total{controller="tradingalgorithm"} 1"#,
            r#"controller_runtime_reconcile_time_seconds_count{controller="tradingalgorithm"} 1"#,
            r#"controller_runtime_active_workers{controller="tradingalgorithm"} 0"#,
            r#"leader_election_master_status{name="trading-operator-leader"} 1"#,
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }
}
