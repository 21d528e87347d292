//! Grafana dashboards: one per operator (the controller's health, its work queue, its API
//! requests, then the operator's own domain panels) and one fleet overview of all of them,
//! rendered as Grafana's JSON model by `cargo xtask crds` into deploy/monitoring/dashboards.
//!
//! Queries name their variables as Grafana does (`$controller`, `$job`, `$namespace`,
//! `$__rate_interval`); [`substitute`] fills them in for a test that runs every query against
//! a real Prometheus.

use serde_json::{Value, json};

/// How a panel shows its queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanelKind {
    TimeSeries,
    Stat,
    Table,
}

/// One PromQL query of a panel, and the legend of its series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query {
    pub expr: Expr,
    pub legend: &'static str,
}

/// What a query asks Prometheus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expr {
    /// PromQL as written.
    PromQl(&'static str),
    /// An operator's per-resource series (labelled `namespace` and `name`, and `by` where it
    /// has one more, such as `partner`) in the dashboard's namespaces, one series per resource
    /// however many replicas export it.
    PerResource {
        metric: &'static str,
        by: Option<&'static str>,
    },
}

impl Query {
    /// The PromQL Grafana sends.
    pub fn promql(&self) -> String {
        match self.expr {
            Expr::PromQl(expr) => expr.to_string(),
            Expr::PerResource { metric, by } => {
                let by = by.map(|label| format!(", {label}")).unwrap_or_default();
                format!(r#"max by (namespace, name{by}) ({metric}{{namespace=~"$namespace"}})"#)
            }
        }
    }

    /// The legend Grafana shows: a per-resource series is named `<namespace>/<name>`, then
    /// its extra label, then what the query calls it.
    pub fn legend(&self) -> String {
        match self.expr {
            Expr::PromQl(_) => self.legend.to_string(),
            Expr::PerResource { by, .. } => {
                let by = by
                    .map(|label| format!(" {{{{{label}}}}}"))
                    .unwrap_or_default();
                format!("{{{{namespace}}}}/{{{{name}}}}{by} {}", self.legend)
                    .trim_end()
                    .to_string()
            }
        }
    }
}

/// One panel: a title, how it shows, the unit of its values (Grafana's unit ids: `s`,
/// `ops`, `bytes`, `percentunit`, `short`, `currencyUSD`, …), its queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Panel {
    pub title: &'static str,
    pub kind: PanelKind,
    pub unit: &'static str,
    pub queries: &'static [Query],
}

/// A titled row of panels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub title: &'static str,
    pub panels: &'static [Panel],
}

/// A query and its legend.
pub const fn q(expr: &'static str, legend: &'static str) -> Query {
    Query {
        expr: Expr::PromQl(expr),
        legend,
    }
}

/// An operator's per-resource series ([`Expr::PerResource`]); `what` follows the resource in
/// the legend.
pub const fn per_resource(metric: &'static str, what: &'static str) -> Query {
    Query {
        expr: Expr::PerResource { metric, by: None },
        legend: what,
    }
}

/// A per-resource series with one more label, `by` ([`Expr::PerResource`]).
pub const fn per_resource_by(metric: &'static str, by: &'static str, what: &'static str) -> Query {
    Query {
        expr: Expr::PerResource {
            metric,
            by: Some(by),
        },
        legend: what,
    }
}

/// A panel.
pub const fn panel(
    title: &'static str,
    kind: PanelKind,
    unit: &'static str,
    queries: &'static [Query],
) -> Panel {
    Panel {
        title,
        kind,
        unit,
        queries,
    }
}

use PanelKind::{Stat, Table, TimeSeries};

/// What every operator's dashboard shows first, and the fleet overview shows for all five:
/// its resources' readiness, its reconciles, its work queue, its requests to the API server
/// and its process.
pub const CONTROLLER_ROWS: &[Row] = &[
    Row {
        title: "Resources",
        panels: &[
            panel(
                "Resources Ready",
                Stat,
                "short",
                &[
                    q(
                        r#"sum by (controller) (operator_resource_ready{controller=~"$controller", namespace=~"$namespace"})"#,
                        "{{controller}} ready",
                    ),
                    q(
                        r#"count by (controller) (operator_resource_ready{controller=~"$controller", namespace=~"$namespace"})"#,
                        "{{controller}} total",
                    ),
                ],
            ),
            panel(
                "Readiness by resource",
                Table,
                "short",
                &[q(
                    r#"max by (controller, namespace, name) (operator_resource_ready{controller=~"$controller", namespace=~"$namespace"})"#,
                    "{{namespace}}/{{name}}",
                )],
            ),
        ],
    },
    Row {
        title: "Reconciles",
        panels: &[
            panel(
                "Reconciles by result",
                TimeSeries,
                "ops",
                &[q(
                    r#"sum by (controller, result) (rate(controller_runtime_reconcile_total{controller=~"$controller"}[$__rate_interval]))"#,
                    "{{controller}} {{result}}",
                )],
            ),
            panel(
                "Reconcile errors",
                TimeSeries,
                "ops",
                &[
                    q(
                        r#"sum by (controller) (rate(controller_runtime_reconcile_errors_total{controller=~"$controller"}[$__rate_interval]))"#,
                        "{{controller}} errors",
                    ),
                    q(
                        r#"sum by (controller, reason) (rate(operator_reconcile_errors_by_reason_total{controller=~"$controller"}[$__rate_interval]))"#,
                        "{{controller}} {{reason}}",
                    ),
                    q(
                        r#"sum by (controller) (rate(controller_runtime_reconcile_panics_total{controller=~"$controller"}[$__rate_interval]))"#,
                        "{{controller}} panics",
                    ),
                ],
            ),
            panel(
                "Reconcile duration",
                TimeSeries,
                "s",
                &[
                    q(
                        r#"histogram_quantile(0.5, sum by (controller, le) (rate(controller_runtime_reconcile_time_seconds_bucket{controller=~"$controller"}[$__rate_interval])))"#,
                        "{{controller}} p50",
                    ),
                    q(
                        r#"histogram_quantile(0.99, sum by (controller, le) (rate(controller_runtime_reconcile_time_seconds_bucket{controller=~"$controller"}[$__rate_interval])))"#,
                        "{{controller}} p99",
                    ),
                ],
            ),
        ],
    },
    Row {
        title: "Work queue",
        panels: &[
            panel(
                "Queue depth",
                TimeSeries,
                "short",
                &[q(
                    r#"sum by (controller) (workqueue_depth{controller=~"$controller"})"#,
                    "{{controller}}",
                )],
            ),
            panel(
                "Time in queue and at work (p99)",
                TimeSeries,
                "s",
                &[
                    q(
                        r#"histogram_quantile(0.99, sum by (controller, le) (rate(workqueue_queue_duration_seconds_bucket{controller=~"$controller"}[$__rate_interval])))"#,
                        "{{controller}} queued",
                    ),
                    q(
                        r#"histogram_quantile(0.99, sum by (controller, le) (rate(workqueue_work_duration_seconds_bucket{controller=~"$controller"}[$__rate_interval])))"#,
                        "{{controller}} working",
                    ),
                ],
            ),
            panel(
                "Adds and retries",
                TimeSeries,
                "ops",
                &[
                    q(
                        r#"sum by (controller) (rate(workqueue_adds_total{controller=~"$controller"}[$__rate_interval]))"#,
                        "{{controller}} adds",
                    ),
                    q(
                        r#"sum by (controller) (rate(workqueue_retries_total{controller=~"$controller"}[$__rate_interval]))"#,
                        "{{controller}} retries",
                    ),
                ],
            ),
            panel(
                "Workers",
                TimeSeries,
                "short",
                &[
                    q(
                        r#"sum by (controller) (controller_runtime_active_workers{controller=~"$controller"})"#,
                        "{{controller}} busy",
                    ),
                    q(
                        r#"max by (controller) (controller_runtime_max_concurrent_reconciles{controller=~"$controller"})"#,
                        "{{controller}} max",
                    ),
                ],
            ),
            panel(
                "Stuck work",
                TimeSeries,
                "s",
                &[
                    q(
                        r#"max by (controller) (workqueue_longest_running_processor_seconds{controller=~"$controller"})"#,
                        "{{controller}} longest running",
                    ),
                    q(
                        r#"sum by (controller) (workqueue_unfinished_work_seconds{controller=~"$controller"})"#,
                        "{{controller}} unfinished",
                    ),
                ],
            ),
        ],
    },
    Row {
        title: "API server and process",
        panels: &[
            panel(
                "API requests by code",
                TimeSeries,
                "ops",
                &[q(
                    r#"sum by (job, code, method) (rate(rest_client_requests_total{job=~"$job"}[$__rate_interval]))"#,
                    "{{job}} {{method}} {{code}}",
                )],
            ),
            panel(
                "API request latency (p99)",
                TimeSeries,
                "s",
                &[q(
                    r#"histogram_quantile(0.99, sum by (job, verb, le) (rate(rest_client_request_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))"#,
                    "{{job}} {{verb}}",
                )],
            ),
            panel(
                "Leader",
                Stat,
                "short",
                &[q(
                    r#"max by (name) (leader_election_master_status{job=~"$job"})"#,
                    "{{name}}",
                )],
            ),
            panel(
                "Memory and CPU",
                TimeSeries,
                "short",
                &[
                    q(
                        r#"process_resident_memory_bytes{job=~"$job"} / 2^20"#,
                        "{{job}} {{pod}} MiB",
                    ),
                    q(
                        r#"rate(process_cpu_seconds_total{job=~"$job"}[$__rate_interval])"#,
                        "{{job}} {{pod}} cores",
                    ),
                ],
            ),
        ],
    },
];

/// Who a dashboard is about: its controllers (`controller` label values) and scrape jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub title: String,
    pub uid: String,
    pub controllers: Vec<String>,
    pub jobs: Vec<String>,
}

/// Grafana's JSON model of a dashboard about `subject`: [`CONTROLLER_ROWS`], then `domain`.
pub fn render(subject: &Subject, domain: &[Row]) -> Value {
    let mut panels = Vec::new();
    let mut y = 0;
    for row in CONTROLLER_ROWS.iter().chain(domain) {
        panels.push(json!({
            "id": panels.len() + 1,
            "type": "row",
            "title": row.title,
            "collapsed": false,
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
            "panels": [],
        }));
        y += 1;
        let width = 24 / row.panels.len().clamp(1, 4) as u32;
        for (i, p) in row.panels.iter().enumerate() {
            let x = (i as u32 % 4) * width;
            if i > 0 && i % 4 == 0 {
                y += 8;
            }
            panels.push(render_panel(p, panels.len() + 1, x, y, width));
        }
        y += 8;
    }
    json!({
        "title": subject.title,
        "uid": subject.uid,
        "tags": ["payments-engine", "operators"],
        "timezone": "utc",
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": 39,
        "editable": false,
        "graphTooltip": 1,
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
            constant("controller", &subject.controllers.join("|")),
            constant("job", &subject.jobs.join("|")),
            {
                "name": "namespace",
                "label": "Namespace",
                "type": "query",
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "query": {"query": "label_values(operator_resource_ready{controller=~\"$controller\"}, namespace)", "refId": "namespaces"},
                "refresh": 2,
                "includeAll": true,
                "multi": true,
                "allValue": ".*",
                "current": {"text": "All", "value": "$__all"},
            },
        ]},
        "panels": panels,
    })
}

/// A hidden variable with one value (a regex of alternatives).
fn constant(name: &str, value: &str) -> Value {
    json!({
        "name": name,
        "type": "constant",
        "hide": 2,
        "query": value,
        "current": {"text": value, "value": value},
    })
}

fn render_panel(p: &Panel, id: usize, x: u32, y: u32, width: u32) -> Value {
    let kind = match p.kind {
        TimeSeries => "timeseries",
        Stat => "stat",
        Table => "table",
    };
    let targets: Vec<Value> = p
        .queries
        .iter()
        .enumerate()
        .map(|(i, query)| {
            json!({
                "refId": char::from(b'A' + i as u8).to_string(),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": query.promql(),
                "legendFormat": query.legend(),
                "instant": p.kind == Table,
                "format": if p.kind == Table { "table" } else { "time_series" },
            })
        })
        .collect();
    json!({
        "id": id,
        "type": kind,
        "title": p.title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": width, "h": 8},
        "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
        "options": {},
        "targets": targets,
    })
}

/// Every query of a rendered dashboard, by panel title.
pub fn queries(dashboard: &Value) -> Vec<(String, Vec<String>)> {
    dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["type"] != "row")
        .map(|p| {
            let exprs = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str().map(String::from))
                .collect();
            (p["title"].as_str().unwrap_or_default().to_string(), exprs)
        })
        .collect()
}

/// `expr` with the dashboard's variables as Grafana would fill them: the constants from the
/// dashboard, `$namespace` as given, `$__rate_interval` as `rate_interval`.
pub fn substitute(dashboard: &Value, expr: &str, namespace: &str, rate_interval: &str) -> String {
    let mut text = expr.replace("$__rate_interval", rate_interval);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] == "constant"
            && let (Some(name), Some(value)) =
                (variable["name"].as_str(), variable["query"].as_str())
        {
            text = text.replace(&format!("${name}"), value);
        }
    }
    text.replace("$namespace", namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metrics, promql_metric_names};

    fn subject() -> Subject {
        Subject {
            title: "Widgets".into(),
            uid: "widget-operator".into(),
            controllers: vec!["widget".into()],
            jobs: vec!["widget-operator-metrics".into()],
        }
    }

    const DOMAIN: &[Row] = &[Row {
        title: "Widgets",
        panels: &[panel(
            "Widget size",
            TimeSeries,
            "short",
            &[q("widget_size{namespace=~\"$namespace\"}", "{{name}}")],
        )],
    }];

    #[test]
    fn a_dashboard_has_the_controller_rows_then_its_own_and_every_query_reads_the_data_source() {
        let dashboard = render(&subject(), DOMAIN);
        let rows: Vec<&str> = dashboard["panels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["type"] == "row")
            .filter_map(|p| p["title"].as_str())
            .collect();
        assert_eq!(
            rows,
            [
                "Resources",
                "Reconciles",
                "Work queue",
                "API server and process",
                "Widgets"
            ]
        );
        let panels = queries(&dashboard);
        assert_eq!(panels.last().map(|p| p.0.as_str()), Some("Widget size"));
        let ids: std::collections::BTreeSet<u64> = dashboard["panels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["id"].as_u64())
            .collect();
        assert_eq!(
            ids.len(),
            dashboard["panels"].as_array().map_or(0, Vec::len),
            "ids are unique"
        );
        for p in dashboard["panels"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["type"] != "row")
        {
            let grid = &p["gridPos"];
            let right = grid["x"].as_u64().unwrap_or(99) + grid["w"].as_u64().unwrap_or(99);
            assert!(right <= 24, "{p}");
            for target in p["targets"].as_array().into_iter().flatten() {
                assert_eq!(target["datasource"]["uid"], "${datasource}");
            }
        }
    }

    #[test]
    fn variables_are_filled_in_as_grafana_fills_them() {
        let dashboard = render(&subject(), DOMAIN);
        let filled = substitute(
            &dashboard,
            r#"rate(x{controller=~"$controller", job=~"$job", namespace=~"$namespace"}[$__rate_interval])"#,
            "payments",
            "1m",
        );
        assert_eq!(
            filled,
            r#"rate(x{controller=~"widget", job=~"widget-operator-metrics", namespace=~"payments"}[1m])"#
        );
    }

    #[test]
    fn a_per_resource_series_is_one_per_resource_in_the_chosen_namespaces() {
        let q = per_resource("widget_size", "size");
        assert_eq!(
            q.promql(),
            r#"max by (namespace, name) (widget_size{namespace=~"$namespace"})"#
        );
        assert_eq!(q.legend(), "{{namespace}}/{{name}} size");
        let q = per_resource_by("widget_part_up", "part", "");
        assert_eq!(
            q.promql(),
            r#"max by (namespace, name, part) (widget_part_up{namespace=~"$namespace"})"#
        );
        assert_eq!(q.legend(), "{{namespace}}/{{name}} {{part}}");
    }

    #[test]
    fn the_controller_panels_read_only_series_the_runtime_exports() {
        let exported = Metrics::new().series_names();
        for row in CONTROLLER_ROWS {
            for p in row.panels {
                for query in p.queries {
                    for name in promql_metric_names(&query.promql()) {
                        assert!(
                            exported.contains(&name),
                            "{}: {name} is not exported",
                            p.title
                        );
                    }
                }
            }
        }
    }
}
