//! What admission costs a write: N creates of each operator's bench resource, one at a time,
//! on testkit without webhooks and then with the operator's webhooks installed as
//! deploy/admission installs them (validating and mutating, over HTTPS on loopback, on
//! connections kept alive as an API server keeps them); for PaymentService also written in
//! v1, so each create is converted by `/convert` as well. The webhook's own time per review
//! (read, decode, validate, encode, answer) comes from its latency histogram.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use operator_core::OperatorDescriptor;
use operator_core::admission::{ServingCertificate, WebhookMetrics, WebhookServer};
use operator_core::metrics::Metrics;
use operator_core::readiness::Readiness;
use serde_json::{Value, json};
use testkit::ApiServer;

use crate::demo_admission::DemoCa;

/// Creates per run: enough for stable percentiles, few enough to run in seconds.
const N: usize = 1000;

fn api(client: &kube::Client, object: &Value, plural: &str) -> Api<DynamicObject> {
    let (group, version) = object["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
        .unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// A server with the operator's CRDs, its bench namespace, and (when `webhooks`) its
/// webhook configurations pointing at a server of its webhooks, wired as the demo wires
/// them, recording into `metrics`. Dropping the returned sender stops that server.
async fn cluster(
    root: &Path,
    operator: &'static OperatorDescriptor,
    webhooks: Option<&Metrics>,
) -> Result<(ApiServer, Option<tokio::sync::watch::Sender<bool>>)> {
    let server = ApiServer::new();
    let ca = DemoCa::new()?;
    for crd in operator.crds() {
        ca.install_crd(&server, serde_json::to_value(crd)?)?;
    }
    server
        .create_from_yaml(
            &json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": operator.bench.namespace}})
            .to_string(),
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let Some(metrics) = webhooks else {
        return Ok((server, None));
    };
    let dir = std::env::temp_dir().join(format!(
        "bench-admission-{}-{}",
        std::process::id(),
        operator.package()
    ));
    let address = ca.wire(root, &server, operator, &dir)?;
    let listener = tokio::net::TcpListener::bind(address).await?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let webhook_server = WebhookServer::new(
        operator.admission,
        server.client(),
        ServingCertificate::in_dir(&dir),
    )
    .converting(operator.resources)
    .recording(WebhookMetrics::register(metrics));
    tokio::spawn(webhook_server.serve(listener, Readiness::default(), stop_rx));
    Ok((server, Some(stop)))
}

/// Milliseconds per create: p50, p99, and the mean.
fn summary(mut samples: Vec<Duration>) -> Value {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    let mean =
        samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64 * 1000.0;
    json!({"p50_ms": at(0.5), "p99_ms": at(0.99), "mean_ms": mean})
}

async fn creates(
    server: &ApiServer,
    operator: &OperatorDescriptor,
    version: Option<&str>,
) -> Result<Value> {
    let client = server.client();
    let served = operator
        .resources
        .first()
        .with_context(|| format!("{} serves no resource", operator.package()))?;
    let plural = served.resource.plural();
    let mut samples = Vec::with_capacity(N);
    for i in 0..N {
        let mut object = operator.bench.resource(&served.resource, i);
        if let (Some(version), Some(convert)) = (version, served.convert) {
            object = convert(object, version).map_err(anyhow::Error::msg)?;
        }
        let resource: DynamicObject = serde_json::from_value(object.clone())?;
        let started = Instant::now();
        api(&client, &object, &plural)
            .create(&PostParams::default(), &resource)
            .await
            .with_context(|| format!("creating {i}"))?;
        samples.push(started.elapsed());
    }
    Ok(summary(samples))
}

/// The webhook's own time per review, from its latency histogram (every webhook path
/// together): the share answered within 2 ms, and the bucket its p99 falls in.
fn webhook_time(exposition: &str) -> Value {
    const COUNT: &str = "controller_runtime_webhook_latency_seconds_count";
    const BUCKET: &str = "controller_runtime_webhook_latency_seconds_bucket";
    let mut buckets: std::collections::BTreeMap<u64, f64> = Default::default();
    let mut count = 0.0;
    for line in exposition.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        if series.starts_with(COUNT) {
            count += value;
        } else if series.starts_with(BUCKET)
            && let Some(le) = series
                .split("le=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
            && let Ok(le) = le.parse::<f64>()
        {
            // Microseconds as the key: the bounds are exact powers of two of a millisecond.
            *buckets.entry((le * 1e6).round() as u64).or_default() += value;
        }
    }
    let within = |micros: u64| {
        buckets
            .range(..=micros)
            .next_back()
            .map_or(0.0, |(_, n)| *n)
    };
    let p99 = buckets
        .iter()
        .find(|(_, n)| **n >= 0.99 * count)
        .map(|(le, _)| *le as f64 / 1000.0);
    json!({"reviews": count, "within_2ms": within(2000) / count.max(1.0), "p99_at_most_ms": p99})
}

/// Each operator's create cost without and with its webhooks, as JSON rows.
pub(super) async fn run(
    root: &Path,
    operators: impl IntoIterator<Item = &'static OperatorDescriptor>,
) -> Result<Vec<Value>> {
    let mut rows = Vec::new();
    for operator in operators {
        eprintln!("bench: admission of {}", operator.package());
        let (bare, _stop) = cluster(root, operator, None).await?;
        let without = creates(&bare, operator, None).await?;
        let metrics = Metrics::new();
        let (admitted, _stop) = cluster(root, operator, Some(&metrics)).await?;
        let with = creates(&admitted, operator, None).await?;
        let mut row = json!({"operator": operator.package(), "n": N, "without": without,
            "with": with, "webhook": webhook_time(&metrics.encode())});
        let converted = operator.resources.iter().find(|r| r.convert.is_some());
        if let Some(converted) = converted {
            let (converting, _stop) = cluster(root, operator, Some(&Metrics::new())).await?;
            let old = format!("{}/v1", converted.resource.group());
            row["with_conversion"] = creates(&converting, operator, Some(&old)).await?;
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The markdown table of [`run`]'s rows.
pub(super) fn table(rows: &[Value]) -> String {
    let cell = |v: &Value| {
        if v.is_null() {
            "—".to_string()
        } else {
            format!(
                "{:.2} / {:.2}",
                v["p50_ms"].as_f64().unwrap_or(0.0),
                v["p99_ms"].as_f64().unwrap_or(0.0)
            )
        }
    };
    let ratio = |v: &Value, base: &Value| {
        let (a, b) = (
            v["mean_ms"].as_f64().unwrap_or(0.0),
            base["mean_ms"].as_f64().unwrap_or(1.0),
        );
        if v.is_null() {
            "—".to_string()
        } else {
            format!("{:.1}×", a / b)
        }
    };
    let mut md = String::from(
        "\n| admission | N | create p50 / p99 ms, no webhooks | with webhooks | mean × | v1 through /convert too | mean × | webhook's own p99 ms (at most) | its reviews within 2 ms |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1}% |\n",
            row["operator"].as_str().unwrap_or_default(),
            row["n"],
            cell(&row["without"]),
            cell(&row["with"]),
            ratio(&row["with"], &row["without"]),
            cell(&row["with_conversion"]),
            ratio(&row["with_conversion"], &row["without"]),
            row["webhook"]["p99_at_most_ms"],
            row["webhook"]["within_2ms"].as_f64().unwrap_or(0.0) * 100.0,
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhooks_own_time_is_read_from_its_histogram() {
        let exposition = r#"
controller_runtime_webhook_latency_seconds_bucket{webhook="/validate",le="0.001"} 90
controller_runtime_webhook_latency_seconds_bucket{webhook="/validate",le="0.002"} 99
controller_runtime_webhook_latency_seconds_bucket{webhook="/validate",le="0.004"} 100
controller_runtime_webhook_latency_seconds_bucket{webhook="/validate",le="+Inf"} 100
controller_runtime_webhook_latency_seconds_count{webhook="/validate"} 100
controller_runtime_webhook_latency_seconds_bucket{webhook="/mutate",le="0.001"} 50
controller_runtime_webhook_latency_seconds_bucket{webhook="/mutate",le="0.002"} 80
controller_runtime_webhook_latency_seconds_bucket{webhook="/mutate",le="0.004"} 100
controller_runtime_webhook_latency_seconds_bucket{webhook="/mutate",le="+Inf"} 100
controller_runtime_webhook_latency_seconds_count{webhook="/mutate"} 100
"#;
        let time = webhook_time(exposition);
        assert_eq!(time["reviews"], 200.0);
        assert_eq!(time["within_2ms"], 179.0 / 200.0);
        assert_eq!(time["p99_at_most_ms"], 4.0);
    }
}
