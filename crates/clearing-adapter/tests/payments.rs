//! Seed 001's business metrics against testkit, with a scripted Prometheus: status.metrics
//! filled, `Failed`/`LowSuccessRate` below `minSuccessRate` and back when the rate recovers,
//! an event on each transition, and no query between refreshes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::common::*;
use anyhow::Result;
use clearing_adapter::crd::ClearingAdapter;
use futures::future::BoxFuture;
use operator_core::prometheus::{MetricsQuery, QueryError, Sample};
use serde_json::Value;

/// Answers the adapter's three queries with a success rate the test sets.
#[derive(Clone, Default)]
struct ScriptedPrometheus {
    rate: Arc<Mutex<f64>>,
    queries: Arc<AtomicUsize>,
}

impl ScriptedPrometheus {
    fn set(&self, rate: f64) {
        *self.rate.lock().unwrap_or_else(PoisonError::into_inner) = rate;
    }
}

impl MetricsQuery for ScriptedPrometheus {
    fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Vec<Sample>, QueryError>> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        let rate = *self.rate.lock().unwrap_or_else(PoisonError::into_inner);
        let sample = |status: Option<&str>, value: f64| Sample {
            labels: status
                .map(|s| BTreeMap::from([("status".to_string(), s.to_string())]))
                .unwrap_or_default(),
            value,
        };
        let answer = if promql.starts_with("sum by (status)") {
            vec![
                sample(Some("success"), (rate * 10_000.0).round()),
                sample(Some("failed"), ((1.0 - rate) * 10_000.0).round()),
            ]
        } else if promql.contains("duration_seconds_sum") {
            vec![sample(None, 0.085)]
        } else {
            vec![sample(None, rate)]
        };
        Box::pin(async move { Ok(answer) })
    }
}

fn succeeding(h: &Harness) -> Value {
    condition(&h.status(SAMPLE), "PaymentsSucceeding")
}

/// Moves the clock past the refresh and has the operator look.
async fn refresh(h: &Harness, n: usize) -> Result<()> {
    h.advance(31);
    h.poke(SAMPLE, 100 + n).await
}

#[tokio::test]
async fn a_low_success_rate_fails_the_adapter_until_it_recovers() -> Result<()> {
    let prometheus = ScriptedPrometheus::default();
    prometheus.set(0.99);
    let reading = Some(Arc::new(prometheus.clone()) as Arc<dyn MetricsQuery>);
    let h = cluster_reading(ScriptedProbe::default(), reading)
        .start()
        .await?;
    h.create_secrets().await?;
    h.create_ready::<ClearingAdapter>(sample()?).await?;
    h.eventually("figures read", |h| succeeding(h)["status"] == "True")
        .await?;
    let status = h.status(SAMPLE);
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["metrics"]["totalTransactions"], 10_000);
    assert_eq!(status["metrics"]["successfulTransactions"], 9_900);
    assert_eq!(status["metrics"]["failedTransactions"], 100);
    assert_eq!(status["metrics"]["successRate"], 0.99);
    assert_eq!(status["metrics"]["averageResponseTime"], "85ms");

    // Not due: passes in between ask nothing.
    let asked = prometheus.queries.load(Ordering::SeqCst);
    h.poke(SAMPLE, 1).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(prometheus.queries.load(Ordering::SeqCst), asked);

    prometheus.set(0.9);
    refresh(&h, 1).await?;
    h.eventually("Failed", |h| h.status(SAMPLE)["phase"] == "Failed")
        .await?;
    assert_eq!(succeeding(&h)["reason"], "LowSuccessRate");
    assert_eq!(
        succeeding(&h)["message"],
        "90.00% of payments succeeded over the last 5m, below minSuccessRate 0.95: check the partners (status.bankingPartnerStatus) and the adapter's logs"
    );
    let low = h.events("LowSuccessRate");
    assert_eq!(low.len(), 1);
    assert_eq!(low[0]["type"], "Warning");

    // Still low at the next refresh: no second event.
    prometheus.set(0.91);
    refresh(&h, 2).await?;
    h.eventually("re-read", |h| {
        h.status(SAMPLE)["metrics"]["successRate"] == 0.91
    })
    .await?;
    assert_eq!(h.events("LowSuccessRate").len(), 1);

    prometheus.set(0.995);
    refresh(&h, 3).await?;
    h.eventually("Running again", |h| h.status(SAMPLE)["phase"] == "Running")
        .await?;
    assert_eq!(succeeding(&h)["reason"], "SuccessRateMet");
    let recovered = h.events("SuccessRateRecovered");
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0]["type"], "Normal");
    Ok(())
}

#[tokio::test]
async fn without_prometheus_the_adapter_says_so_once_and_runs() -> Result<()> {
    let h = start_with(ScriptedProbe::default(), sample()?).await?;
    h.eventually("said", |h| {
        succeeding(h)["reason"] == "PrometheusNotConfigured"
    })
    .await?;
    assert_eq!(succeeding(&h)["status"], "Unknown");
    assert_eq!(h.status(SAMPLE)["phase"], "Running");
    assert!(h.status(SAMPLE)["metrics"].is_null());
    Ok(())
}
