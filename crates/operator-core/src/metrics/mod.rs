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

mod resource_gauge;
mod rest_client;
mod workqueue;
pub use resource_gauge::{GaugeKind, ResourceGauge, ResourceGaugeF64};
pub use rest_client::RestClientLayer;
pub use workqueue::{Queued, ReconcileTimer};

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
struct ReasonLabels {
    controller: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    name: String,
}

/// One custom resource: the labels of the per-resource gauges (removed with the resource).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub controller: String,
    pub namespace: String,
    pub name: String,
}

/// The metrics every operator exports. Cheap to clone; clones share the registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    reconcile_total: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ControllerLabels, Counter>,
    errors_by_reason: Family<ReasonLabels, Counter>,
    reconcile_time: Family<ControllerLabels, Histogram>,
    active_workers: Family<ControllerLabels, Gauge>,
    leader: Family<LeaseLabels, Gauge>,
    ready: Family<ResourceLabels, Gauge>,
    /// The resources `ready` has a series for, so deleted ones can be swept.
    ready_resources: Arc<Mutex<std::collections::HashSet<ResourceLabels>>>,
    /// The series names of every registered metric, see [`Metrics::series_names`].
    series: Arc<Mutex<std::collections::BTreeSet<String>>>,
    /// Operators' removals of their own per-resource series, run when a resource is gone.
    gone_hooks: Arc<Mutex<Vec<GoneHook>>>,
    workqueue: workqueue::WorkQueueMetrics,
    rest_client: rest_client::RestClientMetrics,
}

/// Removes an operator's per-resource series of one resource.
#[derive(Clone)]
struct GoneHook(Arc<dyn Fn(&ResourceLabels) + Send + Sync>);

impl std::fmt::Debug for GoneHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GoneHook")
    }
}

/// The series a metric of `name` and `kind` exports.
fn series_of(name: &str, kind: prometheus_client::metrics::MetricType) -> Vec<String> {
    use prometheus_client::metrics::MetricType;
    match kind {
        MetricType::Counter => vec![format!("{name}_total")],
        MetricType::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|suffix| format!("{name}{suffix}"))
            .collect(),
        _ => vec![name.to_string()],
    }
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
        let errors_by_reason = Family::<ReasonLabels, Counter>::default();
        let reconcile_time = Family::<ControllerLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.005, 2.0, 14))) as fn() -> Histogram,
        );
        let active_workers = Family::<ControllerLabels, Gauge>::default();
        let leader = Family::<LeaseLabels, Gauge>::default();
        let ready = Family::<ResourceLabels, Gauge>::default();
        registry.register_collector(Box::new(ProcessCollector));
        let metrics = Self {
            registry: Arc::new(Mutex::new(registry)),
            reconcile_total,
            reconcile_errors,
            errors_by_reason,
            reconcile_time,
            active_workers,
            leader,
            ready,
            ready_resources: Arc::default(),
            series: Arc::default(),
            gone_hooks: Arc::default(),
            workqueue: workqueue::WorkQueueMetrics::new(),
            rest_client: rest_client::RestClientMetrics::new(),
        };
        metrics.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            metrics.reconcile_total.clone(),
        );
        metrics.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            metrics.reconcile_errors.clone(),
        );
        metrics.register(
            "operator_reconcile_errors_by_reason",
            "Failed reconciliations per controller and reason (InvalidSpec, ApiError, ChildRejected, ...)",
            metrics.errors_by_reason.clone(),
        );
        metrics.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            metrics.reconcile_time.clone(),
        );
        metrics.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            metrics.active_workers.clone(),
        );
        metrics.register(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master",
            metrics.leader.clone(),
        );
        metrics.register(
            "operator_resource_ready",
            "Whether each custom resource's Ready condition is True (1) or not (0), as its status last said; removed with the resource",
            metrics.ready.clone(),
        );
        metrics.workqueue.register(&metrics);
        metrics.rest_client.register(&metrics);
        metrics
    }

    /// Registers a collector that encodes its own series at each scrape.
    fn register_collector(&self, collector: Box<dyn Collector>) {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register_collector(collector);
    }

    /// Registers an operator's own metric (e.g. `trading_algorithm_daily_pnl`).
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(series_of(name, EncodeMetric::metric_type(&metric)));
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(name, help, metric);
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

    /// Counts a failed reconcile by its (bounded) reason.
    pub fn record_error_reason(&self, controller: &str, reason: &str) {
        self.errors_by_reason
            .get_or_create(&ReasonLabels {
                controller: controller.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn set_leader(&self, lease: &str, leading: bool) {
        self.leader
            .get_or_create(&LeaseLabels {
                name: lease.to_string(),
            })
            .set(i64::from(leading));
    }

    /// Sets `operator_resource_ready` of one resource: what the Ready-for-too-long alerts read.
    pub fn set_resource_ready(&self, resource: ResourceLabels, ready: bool) {
        self.ready.get_or_create(&resource).set(i64::from(ready));
        self.ready_resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(resource);
    }

    /// Removes a resource's per-resource series (it was deleted), the operator's own with
    /// them (see [`Metrics::on_resource_gone`]).
    pub fn forget_resource(&self, resource: &ResourceLabels) {
        self.ready.remove(resource);
        self.ready_resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(resource);
        let hooks = self
            .gone_hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for hook in hooks {
            (hook.0)(resource);
        }
    }

    /// Runs `forget(namespace, name)` whenever a resource of `controller` is gone — deleted
    /// through a finalizer, or found missing by the sweep — so an operator's per-resource
    /// gauges leave with their resource even without a finalizer.
    pub fn on_resource_gone(
        &self,
        controller: impl Into<String>,
        forget: impl Fn(&str, &str) + Send + Sync + 'static,
    ) {
        let controller = controller.into();
        let hook = move |r: &ResourceLabels| {
            if r.controller == controller {
                forget(&r.namespace, &r.name);
            }
        };
        self.gone_hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(GoneHook(Arc::new(hook)));
    }

    /// Removes the series of `controller`'s resources that `live` (namespace, name) no
    /// longer holds: resources deleted while this process was not looking.
    pub fn retain_resources(
        &self,
        controller: &str,
        live: &std::collections::HashSet<(String, String)>,
    ) {
        let gone: Vec<ResourceLabels> = self
            .ready_resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|r| {
                r.controller == controller && !live.contains(&(r.namespace.clone(), r.name.clone()))
            })
            .cloned()
            .collect();
        for resource in &gone {
            self.forget_resource(resource);
        }
    }

    /// Every series name this registry exports, whether or not it has a sample yet (`_total`
    /// of counters, `_bucket`/`_sum`/`_count` of histograms, and the process metrics): what
    /// an alert rule may name.
    pub fn series_names(&self) -> std::collections::BTreeSet<String> {
        let mut names = self
            .series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        names.extend(
            [
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
                "process_open_fds",
            ]
            .map(String::from),
        );
        names.extend(workqueue::COLLECTED_SERIES.map(String::from));
        names
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

/// The metric names a PromQL expression reads: what an alert rule depends on being exported.
/// Strings, label matchers, ranges, grouping clauses, functions and keywords are left out.
pub fn promql_metric_names(expr: &str) -> std::collections::BTreeSet<String> {
    use std::sync::LazyLock;
    static STRINGS: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(r#""[^"]*"|'[^']*'"#).ok());
    static MATCHERS: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(r"\{[^}]*\}|\[[^\]]*\]").ok());
    static GROUPING: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
        regex::Regex::new(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)").ok()
    });
    static TOKENS: LazyLock<Option<regex::Regex>> =
        LazyLock::new(|| regex::Regex::new(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?").ok());
    const KEYWORDS: [&str; 12] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
    ];
    let mut text = expr.to_string();
    for re in [&*STRINGS, &*MATCHERS, &*GROUPING].into_iter().flatten() {
        text = re.replace_all(&text, " ").into_owned();
    }
    let Some(tokens) = TOKENS.as_ref() else {
        return Default::default();
    };
    tokens
        .captures_iter(&text)
        .filter(|c| c.get(2).is_none())
        .filter_map(|c| c.get(1).map(|m| m.as_str().to_string()))
        .filter(|t| !KEYWORDS.contains(&t.to_lowercase().as_str()))
        .collect()
}

/// `process_*` metrics from `/proc/self` (Linux; absent elsewhere).
#[derive(Debug)]
struct ProcessCollector;

/// CPU seconds (user and system) and resident bytes, from `/proc/self/schedstat` (nanoseconds
/// on the CPU) and `/proc/self/status` (`VmRSS` in kB): units the kernel states, so neither
/// the clock tick rate nor the page size has to be assumed.
fn proc_stat() -> Option<(f64, f64)> {
    let schedstat = std::fs::read_to_string("/proc/self/schedstat").ok()?;
    let on_cpu_ns: f64 = schedstat.split_whitespace().next()?.parse().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((on_cpu_ns / 1e9, rss_kb * 1024.0))
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
            let _timer = m.queued("tradingalgorithm").start();
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
        let names = m.series_names();
        assert!(names.contains("controller_runtime_reconcile_total"));
        assert!(names.contains("controller_runtime_reconcile_time_seconds_bucket"));
        assert!(names.contains("operator_resource_ready"));
    }

    #[test]
    fn an_operators_own_series_leave_with_a_swept_resource() {
        let m = Metrics::new();
        let gauge = Family::<ResourceLabels, Gauge>::default();
        m.register("widget_size", "size", gauge.clone());
        let widget = |name: &str| ResourceLabels {
            controller: "widget".into(),
            namespace: "default".into(),
            name: name.into(),
        };
        let hooked = gauge.clone();
        m.on_resource_gone("widget", move |namespace, name| {
            hooked.remove(&ResourceLabels {
                controller: "widget".into(),
                namespace: namespace.into(),
                name: name.into(),
            });
        });
        // Another controller's resource going leaves the widget's series alone.
        m.on_resource_gone("gadget", |_, _| panic!("not a gadget"));
        for name in ["kept", "deleted"] {
            m.set_resource_ready(widget(name), true);
            gauge.get_or_create(&widget(name)).set(3);
        }
        let live = std::collections::HashSet::from([("default".to_string(), "kept".to_string())]);
        m.retain_resources("widget", &live);
        let text = m.encode();
        assert!(
            text.contains(r#"widget_size{controller="widget",namespace="default",name="kept"} 3"#),
            "{text}"
        );
        assert!(!text.contains("deleted"), "{text}");
    }

    #[test]
    fn alert_expressions_are_read_for_the_metrics_they_need() {
        let names = |e: &str| promql_metric_names(e).into_iter().collect::<Vec<_>>();
        assert_eq!(
            names(
                r#"histogram_quantile(0.99, sum by (le) (rate(controller_runtime_reconcile_time_seconds_bucket{controller="x"}[5m]))) > 30"#
            ),
            ["controller_runtime_reconcile_time_seconds_bucket"]
        );
        assert_eq!(
            names(
                r#"absent(up{job="a"} == 1) or max(leader_election_master_status{name="l"}) < 1"#
            ),
            ["leader_election_master_status", "up"]
        );
        assert_eq!(
            names(
                "trading_algorithm_daily_pnl <= on(namespace, name) -0.8 * trading_algorithm_daily_loss_limit"
            ),
            [
                "trading_algorithm_daily_loss_limit",
                "trading_algorithm_daily_pnl"
            ]
        );
        assert_eq!(
            names("time() - payment_service_last_backup_timestamp_seconds > 2 * 86400"),
            ["payment_service_last_backup_timestamp_seconds"]
        );
    }

    #[test]
    fn process_metrics_are_read_in_the_kernels_own_units() {
        let (cpu, rss) = proc_stat().unwrap_or_default();
        assert!(cpu >= 0.0);
        // A test binary holds more than a megabyte and less than a terabyte.
        assert!(rss > 1e6 && rss < 1e12, "{rss}");
    }
}
