//! deploy/monitoring as Prometheus and Alertmanager read it: every alert reads series that
//! exist, is unit-tested quiet and firing by `promtool`, and links a runbook section under
//! one configurable base. Needs kubectl and promtool (installed on first use), not a cluster.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use e2e::manifests::{deploy_dir, render};
use e2e::monitoring::{promtool_test, rule_file, rules, unit_tests};
use operator_core::metrics::{Metrics, promql_metric_names};
use serde_json::Value;

use crate::manifests::{OPERATORS, kind};

/// Series an alert may read that no operator exports, by who exports them.
const EXTERNAL_SERIES: [(&str, &[&str]); 3] = [
    ("Prometheus", &["up"]),
    (
        "kube-state-metrics",
        &[
            "kube_pod_container_status_restarts_total",
            "kube_horizontalpodautoscaler_status_desired_replicas",
            "kube_horizontalpodautoscaler_status_current_replicas",
            "kube_horizontalpodautoscaler_status_condition",
        ],
    ),
    (
        // The metric contract of the workloads the operators run: what their docs page says
        // an image must export.
        "the workload",
        &[
            "payment_processor_transactions_total",
            "payment_processor_duration_seconds_bucket",
        ],
    ),
];

/// The `base` every `runbook_url` starts with, from deploy/monitoring/runbooks.
fn runbook_base() -> Result<String> {
    let path = deploy_dir().join("monitoring/runbooks/kustomization.yaml");
    let component: Value = serde_yaml::from_str(&std::fs::read_to_string(path)?)?;
    component["configMapGenerator"][0]["literals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|l| l.strip_prefix("base="))
        .map(str::to_string)
        .context("base= in deploy/monitoring/runbooks")
}

/// Every alert can fire: each series its expression reads is one the operator exports, one
/// its own recording rules make, or one of [`EXTERNAL_SERIES`] (a workload's documented in
/// the operator's docs page); its runbook link is the configured base and a section that
/// exists.
#[test]
fn every_alert_reads_series_that_exist_and_links_its_runbook() -> Result<()> {
    let runbooks = std::fs::read_to_string(deploy_dir().join("../docs/runbooks.md"))?;
    let base = runbook_base()?;
    assert_eq!(
        base,
        operator_core::monitoring::RUNBOOK_BASE,
        "the alerts the operators write link where deploy/monitoring's do"
    );
    for descriptor in OPERATORS {
        let operator = descriptor.package();
        let metrics = Metrics::new();
        (descriptor.metrics)(&metrics);
        // What the runtime adds when the webhooks are on.
        operator_core::admission::WebhookMetrics::register(&metrics);
        let exported = metrics.series_names();
        let docs = std::fs::read_to_string(deploy_dir().join(format!("../docs/{operator}.md")))?;
        let file = rule_file(operator)?;
        let recorded: BTreeSet<&str> = rules(&file).filter_map(|r| r["record"].as_str()).collect();
        let mut alerts = 0;
        for rule in rules(&file).filter(|r| r["alert"].is_string()) {
            alerts += 1;
            let alert = rule["alert"].as_str().unwrap_or_default();
            let expr = rule["expr"].as_str().context("expr")?;
            for metric in promql_metric_names(expr) {
                let external = EXTERNAL_SERIES
                    .iter()
                    .find(|(_, series)| series.contains(&metric.as_str()));
                assert!(
                    exported.contains(&metric)
                        || recorded.contains(metric.as_str())
                        || external.is_some(),
                    "{operator} alert {alert} reads {metric}, which nothing named exports"
                );
                if let Some(("the workload", _)) = external {
                    assert!(
                        docs.contains(metric.trim_end_matches("_bucket")),
                        "docs/{operator}.md does not name {metric}, which {alert} reads"
                    );
                }
            }
            let runbook = rule["annotations"]["runbook_url"]
                .as_str()
                .context("runbook_url")?;
            let anchor = runbook
                .strip_prefix(&format!("{base}#"))
                .with_context(|| format!("{alert}: runbook_url {runbook} is not under {base}"))?;
            assert!(
                runbooks.contains(&format!("\n## {anchor}\n")),
                "{alert}: no section {anchor} in docs/runbooks.md"
            );
        }
        assert!(alerts >= 5, "{operator}: {alerts} alerts");
    }
    Ok(())
}

/// `promtool check rules` and `promtool test rules` pass for every operator, and its unit
/// tests hold each alert both quiet and firing.
#[test]
fn every_alert_is_unit_tested_quiet_and_firing_by_promtool() -> Result<()> {
    for descriptor in OPERATORS {
        let operator = descriptor.package();
        let tests = unit_tests(operator)?;
        let expectations: Vec<&Value> = tests["tests"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|t| t["alert_rule_test"].as_array().into_iter().flatten())
            .collect();
        for rule in rules(&rule_file(operator)?).filter(|r| r["alert"].is_string()) {
            let alert = &rule["alert"];
            let firing = |fires: bool| {
                expectations.iter().any(|e| {
                    e["alertname"] == *alert
                        && e["exp_alerts"]
                            .as_array()
                            .is_some_and(|a| a.is_empty() != fires)
                })
            };
            assert!(firing(false), "{operator}: no test holds {alert} quiet");
            assert!(firing(true), "{operator}: no test makes {alert} fire");
        }
        promtool_test(operator)?;
    }
    Ok(())
}

/// A platform team points every link at its own copy of the runbooks from its own overlay,
/// as deploy/monitoring/runbooks says: a copy of the component with another base.
#[test]
fn an_overlay_points_the_runbook_links_at_its_own_base() -> Result<()> {
    let overlay = std::env::temp_dir().join(format!("runbook-overlay-{}", std::process::id()));
    let component = overlay.join("runbooks");
    std::fs::create_dir_all(&component)?;
    let ours =
        std::fs::read_to_string(deploy_dir().join("monitoring/runbooks/kustomization.yaml"))?;
    let base = runbook_base()?;
    let theirs = ours
        .replace(&base, "https://wiki.example.internal/payments/runbooks")
        .replace(
            "  - name: runbooks\n",
            "  - name: runbooks\n    behavior: replace\n",
        );
    std::fs::write(component.join("kustomization.yaml"), theirs)?;
    // kustomize takes a base by a relative path only: from the overlay up to `/`, then down.
    let upstream = deploy_dir()
        .join("monitoring/clearing-adapter")
        .canonicalize()?;
    let up = "../".repeat(overlay.components().count().saturating_sub(1));
    let upstream = format!(
        "{up}{}",
        upstream.display().to_string().trim_start_matches('/')
    );
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!("resources:\n  - {upstream}\ncomponents:\n  - runbooks\n"),
    )?;
    let rendered = render(overlay.to_str().context("path")?);
    let _ = std::fs::remove_dir_all(&overlay);
    let links: Vec<String> = rendered?
        .iter()
        .filter(|o| kind(o) == "PrometheusRule")
        .flat_map(|o| {
            rules(&o["spec"])
                .map(|r| r["annotations"]["runbook_url"].clone())
                .collect::<Vec<_>>()
        })
        .filter_map(|u| u.as_str().map(str::to_string))
        .collect();
    assert!(links.len() >= 10, "{links:?}");
    for link in links {
        assert!(
            link.starts_with("https://wiki.example.internal/payments/runbooks#"),
            "{link}"
        );
    }
    Ok(())
}

/// Every dashboard ships as its JSON file and as a ConfigMap Grafana's sidecar loads (label
/// `grafana_dashboard: "1"`, the same JSON); every panel has queries, and each series a query
/// reads is one the operator exports, one of its recording rules, or a workload's documented
/// series. (That each panel answers with series is proven against a real Prometheus in each
/// operator's scenario, `e2e::dashboards::every_panel_shows`.)
#[test]
fn every_dashboard_ships_for_the_sidecar_and_reads_series_that_exist() -> Result<()> {
    let config_maps = render("monitoring/dashboards")?;
    let mut shipped = BTreeSet::new();
    for cm in &config_maps {
        assert_eq!(kind(cm), "ConfigMap");
        assert_eq!(
            cm["metadata"]["labels"]["grafana_dashboard"], "1",
            "{}",
            cm["metadata"]
        );
        for (file, json) in cm["data"].as_object().into_iter().flatten() {
            let name = file.trim_end_matches(".json");
            let embedded: Value = serde_json::from_str(json.as_str().unwrap_or_default())?;
            assert_eq!(embedded, e2e::dashboards::dashboard(name)?, "{file}");
            shipped.insert(name.to_string());
        }
    }
    let expected: BTreeSet<String> = OPERATORS
        .iter()
        .map(|o| o.package().to_string())
        .chain(["fleet".to_string()])
        .collect();
    assert_eq!(shipped, expected);
    for name in &expected {
        let dashboard = e2e::dashboards::dashboard(name)?;
        let metrics = Metrics::new();
        let mut recorded = BTreeSet::new();
        for descriptor in OPERATORS
            .iter()
            .filter(|o| o.package() == name || name == "fleet")
        {
            (descriptor.metrics)(&metrics);
            let file = rule_file(descriptor.package())?;
            recorded.extend(rules(&file).filter_map(|r| r["record"].as_str().map(String::from)));
        }
        let exported = metrics.series_names();
        let panels = operator_core::dashboard::queries(&dashboard);
        assert!(panels.len() >= 14, "{name}: {} panels", panels.len());
        for (title, exprs) in panels {
            assert!(!exprs.is_empty(), "{name}: panel {title:?} has no query");
            for metric in exprs.iter().flat_map(|e| promql_metric_names(e)) {
                let external = EXTERNAL_SERIES
                    .iter()
                    .any(|(_, series)| series.contains(&metric.as_str()));
                assert!(
                    exported.contains(&metric) || recorded.contains(&metric) || external,
                    "{name}: panel {title:?} reads {metric}, which nothing named exports"
                );
            }
        }
    }
    Ok(())
}
