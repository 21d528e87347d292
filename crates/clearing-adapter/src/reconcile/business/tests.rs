//! Reading and judging the payments' figures against a scripted Prometheus.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;

use super::*;
use crate::crd::tests_support::sample;

/// Answers each of the three queries from a script, and counts them.
#[derive(Default)]
struct Script {
    success: f64,
    failed: f64,
    /// `None`: no traffic in the window (Prometheus answers an empty vector).
    rate: Option<f64>,
    latency: Option<f64>,
    down: bool,
    queries: AtomicUsize,
}

impl MetricsQuery for Script {
    fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Vec<Sample>, QueryError>> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        let sample = |labels: &[(&str, &str)], value: f64| Sample {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            value,
        };
        let answer = if self.down {
            Err(QueryError::Timeout(Duration::from_secs(5)))
        } else if promql.starts_with("sum by (status)") {
            assert!(promql.contains(r#"namespace="payments",service="card-clearing""#));
            Ok(vec![
                sample(&[("status", "success")], self.success),
                sample(&[("status", "failed")], self.failed),
            ])
        } else if promql.contains("duration_seconds_sum") {
            Ok(self.latency.map(|v| sample(&[], v)).into_iter().collect())
        } else {
            assert!(promql.contains("[300s]"), "the window: {promql}");
            Ok(self.rate.map(|v| sample(&[], v)).into_iter().collect())
        };
        Box::pin(async move { answer })
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

async fn reading(script: &Script, reads: &LastReads, ca: &ClearingAdapter, now: i64) -> Reading {
    read(Some(script as &dyn MetricsQuery), reads, ca, 2, at(now)).await
}

/// The condition the sample gets from `script` read once: status, reason and message.
async fn verdict(script: Script) -> Option<(ConditionStatus, &'static str, String)> {
    let ca = sample();
    let read = reading(&script, &LastReads::default(), &ca, 0).await;
    judged(&ca, &read).map(|c| (c.status, c.reason.as_str(), c.message))
}

#[tokio::test]
async fn the_figures_are_read_and_a_healthy_success_rate_is_met() {
    let script = Script {
        success: 990.0,
        failed: 10.0,
        rate: Some(0.990_04),
        latency: Some(0.1234),
        ..Script::default()
    };
    let ca = sample();
    let read = reading(&script, &LastReads::default(), &ca, 0).await;
    let Reading::Read(metrics) = &read else {
        panic!("{read:?}");
    };
    assert_eq!(
        metrics,
        &ProcessorMetrics {
            total_transactions: 1000,
            successful_transactions: 990,
            failed_transactions: 10,
            average_response_time: Some("123ms".into()),
            success_rate: Some(0.99),
            last_read: Some(Time(at(0))),
        }
    );
    let judged = judged(&ca, &read).map(|c| (c.status, c.reason.as_str(), c.message));
    assert_eq!(
        judged,
        Some((
            ConditionStatus::True,
            "SuccessRateMet",
            "99.00% of payments succeeded over the last 5m (minSuccessRate 0.95)".into()
        ))
    );
}

#[tokio::test]
async fn a_success_rate_below_the_minimum_is_low() {
    let script = Script {
        success: 900.0,
        failed: 100.0,
        rate: Some(0.9),
        ..Script::default()
    };
    assert_eq!(
        verdict(script).await,
        Some((
            ConditionStatus::False,
            "LowSuccessRate",
            "90.00% of payments succeeded over the last 5m, below minSuccessRate 0.95: check the partners (status.bankingPartnerStatus) and the adapter's logs".into()
        ))
    );
}

#[tokio::test]
async fn no_traffic_in_the_window_is_nothing_to_judge() {
    let script = Script {
        success: 5.0,
        ..Script::default()
    };
    let ca = sample();
    let read = reading(&script, &LastReads::default(), &ca, 0).await;
    assert!(
        matches!(&read, Reading::Read(m) if m.success_rate.is_none() && m.average_response_time.is_none())
    );
    let judged = judged(&ca, &read).map(|c| (c.status, c.reason.as_str()));
    assert_eq!(judged, Some((ConditionStatus::Unknown, "NoTraffic")));
}

#[tokio::test]
async fn a_prometheus_that_fails_is_unknown_and_says_what_to_check() {
    let script = Script {
        down: true,
        ..Script::default()
    };
    assert_eq!(
        verdict(script).await,
        Some((
            ConditionStatus::Unknown,
            "MetricsUnavailable",
            "the adapter's payments could not be read: Prometheus gave no answer within 5s; status.metrics holds the last figures read. Check operator.prometheus and that Prometheus scrapes the adapter".into()
        ))
    );
}

#[tokio::test]
async fn prometheus_is_asked_at_most_once_an_interval_and_only_while_pods_are_ready() {
    let script = Script::default();
    let reads = LastReads::default();
    let ca = sample();
    assert!(matches!(
        reading(&script, &reads, &ca, 0).await,
        Reading::Read(_)
    ));
    assert_eq!(script.queries.load(Ordering::SeqCst), 3);
    assert_eq!(reads.due_in(&ca, at(10)), Duration::from_secs(20));
    assert_eq!(reading(&script, &reads, &ca, 10).await, Reading::Kept);
    assert_eq!(script.queries.load(Ordering::SeqCst), 3, "not due");
    assert!(matches!(
        reading(&script, &reads, &ca, 30).await,
        Reading::Read(_)
    ));
    reads.forget(&ca);
    let none_ready = read(Some(&script as &dyn MetricsQuery), &reads, &ca, 0, at(90)).await;
    assert_eq!(none_ready, Reading::Kept);
    assert_eq!(script.queries.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn without_prometheus_or_monitoring_nothing_is_read_and_the_condition_says_why() {
    let mut ca = sample();
    let reason = |r: Reading| judged(&ca, &r).map(|c| c.reason.as_str());
    let none = read(None, &LastReads::default(), &ca, 2, at(0)).await;
    assert_eq!(reason(none), Some("PrometheusNotConfigured"));
    ca.spec.monitoring.enabled = false;
    let script = Script::default();
    let off = reading(&script, &LastReads::default(), &ca, 0).await;
    assert_eq!(
        judged(&ca, &off).map(|c| c.reason.as_str()),
        Some("MonitoringDisabled")
    );
    assert_eq!(script.queries.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_read_that_changes_no_figure_keeps_its_time_so_nothing_is_written() {
    let script = Script {
        success: 10.0,
        rate: Some(1.0),
        ..Script::default()
    };
    let mut ca = sample();
    let first = reading(&script, &LastReads::default(), &ca, 0).await;
    let Reading::Read(metrics) = first else {
        panic!("{first:?}");
    };
    ca.status = Some(crate::crd::ClearingAdapterStatus {
        metrics: Some(metrics.clone()),
        ..Default::default()
    });
    let again = reading(&script, &LastReads::default(), &ca, 60).await;
    assert_eq!(again, Reading::Read(metrics));
}

#[test]
fn response_times_read_as_go_durations() {
    assert_eq!(duration_text(0.0004), "0ms");
    assert_eq!(duration_text(0.1234), "123ms");
    assert_eq!(duration_text(2.5), "2.5s");
    assert_eq!(duration_text(12.0), "12s");
}

#[test]
fn a_short_window_is_read_as_often_but_never_more_than_every_5s() {
    let mut ca = sample();
    assert_eq!(refresh_interval(&ca), Duration::from_secs(30));
    ca.spec.monitoring.metrics_window = "10s".into();
    assert_eq!(refresh_interval(&ca), Duration::from_secs(10));
    ca.spec.monitoring.metrics_window = "1s".into();
    assert_eq!(refresh_interval(&ca), Duration::from_secs(5));
}
