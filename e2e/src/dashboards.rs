//! deploy/monitoring/dashboards against a real Prometheus: while an operator and its workload
//! run, every panel of its dashboard and of the fleet overview answers without an error and
//! with at least one series.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use operator_core::OperatorDescriptor;
use operator_core::dashboard::{queries, substitute};
use operator_core::prometheus::{MetricsQuery, Prometheus, PrometheusSettings};
use serde_json::Value;

use crate::manifests::deploy_dir;
use crate::monitoring::rule_file;
use crate::operator::OperatorProcess;
use crate::prometheus::{RealPrometheus, Target};

/// `deploy/monitoring/dashboards/<name>.json`, parsed.
pub fn dashboard(name: &str) -> Result<Value> {
    let path = deploy_dir().join(format!("monitoring/dashboards/{name}.json"));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// What `dashboard`'s panels answer now: the panels without a series, and the queries
/// Prometheus refused (an error in a query is a defect at once, not something to wait out).
async fn empty_panels(
    prometheus: &Prometheus,
    dashboard: &Value,
    namespace: &str,
) -> Result<Vec<String>> {
    let mut empty = Vec::new();
    for (title, exprs) in queries(dashboard) {
        let mut series = 0;
        for expr in &exprs {
            let promql = substitute(dashboard, expr, namespace, "30s");
            match prometheus.query(&promql).await {
                Ok(samples) => series += samples.len(),
                Err(error) => bail!("panel {title:?}: {promql}: {error}"),
            }
        }
        if series == 0 {
            empty.push(format!("{title:?} ({})", exprs.join(" | ")));
        }
    }
    Ok(empty)
}

/// Runs a real Prometheus scraping `operator` (as its ServiceMonitor would: job
/// `<binary>-metrics`, the operator's labels kept) and `workloads`, with the operator's rules
/// from deploy/monitoring loaded, and waits until every panel of the operator's dashboard and
/// of the fleet overview shows a series for `namespace`.
pub async fn every_panel_shows(
    operator: &OperatorDescriptor,
    process: &OperatorProcess,
    namespace: &str,
    workloads: &[Target],
) -> Result<()> {
    let address = process.metrics.context("the operator serves no /metrics")?;
    let mut targets = vec![Target {
        address,
        labels: vec![
            ("job".into(), format!("{}-metrics", operator.binary_name())),
            ("namespace".into(), process.home.clone()),
            ("pod".into(), format!("{}-0", operator.binary_name())),
        ],
    }];
    targets.extend_from_slice(workloads);
    let rules = rule_file(operator.package())?;
    let server = RealPrometheus::start_with_rules(
        &format!("{}-dashboards", operator.package()),
        &targets,
        Some(&rules),
    )
    .await?;
    let prometheus = Prometheus::new(PrometheusSettings {
        url: server.url.clone(),
        bearer_token_file: None,
        ca_file: None,
        timeout: PrometheusSettings::TIMEOUT,
    });
    for name in [operator.package(), "fleet"] {
        let board = dashboard(name)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let empty = empty_panels(&prometheus, &board, namespace)
                .await
                .with_context(|| format!("dashboard {name}"))?;
            if empty.is_empty() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "dashboard {name}: panels without a series after 90s:\n  {}",
                    empty.join("\n  ")
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    Ok(())
}
