//! Seed 001's business metrics: what the adapter's own pods export of the payments they carry
//! (docs/clearing-adapter.md, "the metric contract"), read from the operator's Prometheus —
//! at most once every [`refresh_interval`] per adapter, and only while one of its pods is
//! ready — and the success rate judged against `monitoring.minSuccessRate`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use operator_core::conditions::{ConditionStatus, Observed, Reason};
use operator_core::namespace_of;
use operator_core::prometheus::{MetricsQuery, QueryError, Sample};

use crate::crd::{ClearingAdapter, ProcessorMetrics};

/// The condition that says whether payments succeed often enough.
pub const PAYMENTS_SUCCEEDING: &str = "PaymentsSucceeding";

/// How often the figures are read at most: every 30 s, or every window when it is shorter.
pub fn refresh_interval(ca: &ClearingAdapter) -> Duration {
    window(ca).clamp(Duration::from_secs(5), Duration::from_secs(30))
}

fn window(ca: &ClearingAdapter) -> Duration {
    (ca.spec.monitoring.metrics_window).or(Duration::from_secs(300))
}

/// When each adapter (by UID) was last read: in memory, so a read that changes nothing
/// writes nothing.
#[derive(Clone, Debug, Default)]
pub struct LastReads(Arc<Mutex<HashMap<String, Timestamp>>>);

impl LastReads {
    /// How long until `ca` is due a read; zero when it is due now.
    pub fn due_in(&self, ca: &ClearingAdapter, now: Timestamp) -> Duration {
        let last = self
            .0
            .lock()
            .ok()
            .and_then(|reads| reads.get(&uid(ca)).copied());
        let Some(last) = last else {
            return Duration::ZERO;
        };
        let since = Duration::try_from(last.duration_until(now)).unwrap_or_default();
        refresh_interval(ca).saturating_sub(since)
    }

    fn record(&self, ca: &ClearingAdapter, now: Timestamp) {
        if let Ok(mut reads) = self.0.lock() {
            reads.insert(uid(ca), now);
        }
    }

    /// Forgets a deleted adapter.
    pub fn forget(&self, ca: &ClearingAdapter) {
        if let Ok(mut reads) = self.0.lock() {
            reads.remove(&uid(ca));
        }
    }
}

fn uid(ca: &ClearingAdapter) -> String {
    ca.meta().uid.clone().unwrap_or_default()
}

/// What this pass learnt of the adapter's payments.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    /// Nothing is read, and the condition says why (no Prometheus, monitoring off).
    Off {
        reason: Reason,
        why: String,
    },
    /// Not due, or no pod ready: status keeps what it holds.
    Kept,
    Read(ProcessorMetrics),
    Failed(QueryError),
}

/// Why nothing is read for `ca`: its monitoring is off, or the operator has no Prometheus.
pub fn off(ca: &ClearingAdapter) -> Reading {
    if !ca.spec.monitoring.enabled {
        return Reading::Off {
            reason: operator_core::reason!("MonitoringDisabled"),
            why: "monitoring.enabled is false: the adapter is not scraped, so its payments are not judged".into(),
        };
    }
    Reading::Off {
        reason: operator_core::reason!("PrometheusNotConfigured"),
        why: "the operator has no Prometheus to read the adapter's payments from (operator.prometheus.url in its config): minSuccessRate is not enforced".into(),
    }
}

/// Reads the adapter's figures when they are due.
pub async fn read(
    prometheus: Option<&dyn MetricsQuery>,
    last_reads: &LastReads,
    ca: &ClearingAdapter,
    ready_pods: i32,
    now: Timestamp,
) -> Reading {
    let Some(prometheus) = prometheus.filter(|_| ca.spec.monitoring.enabled) else {
        return off(ca);
    };
    if ready_pods == 0 || !last_reads.due_in(ca, now).is_zero() {
        return Reading::Kept;
    }
    last_reads.record(ca, now);
    match figures(prometheus, ca).await {
        Ok(mut metrics) => {
            let before = ca.status.as_ref().and_then(|s| s.metrics.clone());
            metrics.last_read = match before {
                Some(b)
                    if ProcessorMetrics {
                        last_read: None,
                        ..b.clone()
                    } == metrics =>
                {
                    b.last_read
                }
                _ => Some(Time(now)),
            };
            Reading::Read(metrics)
        }
        Err(e) => Reading::Failed(e),
    }
}

/// The three queries, by the adapter's `namespace` and `service` labels.
async fn figures(
    prometheus: &dyn MetricsQuery,
    ca: &ClearingAdapter,
) -> Result<ProcessorMetrics, QueryError> {
    let of = format!(
        r#"namespace="{}",service="{}""#,
        namespace_of(ca),
        ca.name_any()
    );
    let window = format!("{}s", window(ca).as_secs().max(1));
    let totals = prometheus
        .query(&format!(
            "sum by (status) (payment_processor_transactions_total{{{of}}})"
        ))
        .await?;
    let success_rate = prometheus
        .query(&format!(
            r#"(sum(rate(payment_processor_transactions_total{{{of},status="success"}}[{window}])) or vector(0)) / sum(rate(payment_processor_transactions_total{{{of}}}[{window}]))"#
        ))
        .await?;
    let latency = prometheus
        .query(&format!(
            "sum(rate(payment_processor_duration_seconds_sum{{{of}}}[{window}])) / sum(rate(payment_processor_duration_seconds_count{{{of}}}[{window}]))"
        ))
        .await?;
    let count = |samples: &[Sample]| {
        samples
            .iter()
            .map(|s| s.value)
            .filter(|v| v.is_finite())
            .sum::<f64>() as i64
    };
    let successful: Vec<Sample> = totals
        .iter()
        .filter(|s| s.labels.get("status").map(String::as_str) == Some("success"))
        .cloned()
        .collect();
    let total = count(&totals);
    let successful = count(&successful);
    let finite = |samples: &[Sample]| samples.first().map(|s| s.value).filter(|v| v.is_finite());
    Ok(ProcessorMetrics {
        total_transactions: total,
        successful_transactions: successful,
        failed_transactions: total - successful,
        average_response_time: finite(&latency).map(duration_text),
        success_rate: finite(&success_rate).map(|r| (r * 10_000.0).round() / 10_000.0),
        last_read: None,
    })
}

/// Seconds as a Go duration to the millisecond: `0.1234` → `123ms`, `2.5` → `2.5s`.
fn duration_text(seconds: f64) -> String {
    let millis = (seconds * 1000.0).round().max(0.0) as u64;
    if millis < 1000 {
        format!("{millis}ms")
    } else {
        let text = format!("{:.3}", millis as f64 / 1000.0);
        format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// The `PaymentsSucceeding` condition a reading sets; `None` keeps the one there is.
pub fn judged(ca: &ClearingAdapter, reading: &Reading) -> Option<Observed<'static>> {
    let condition = |status, reason, message| Observed {
        type_: PAYMENTS_SUCCEEDING,
        status,
        reason,
        message,
    };
    let min = ca.spec.monitoring.min_success_rate;
    let window = ca.spec.monitoring.metrics_window.as_str().to_string();
    Some(match reading {
        Reading::Kept => return None,
        Reading::Off { reason, why } => condition(ConditionStatus::Unknown, *reason, why.clone()),
        Reading::Failed(e) => condition(
            ConditionStatus::Unknown,
            operator_core::reason!("MetricsUnavailable"),
            format!(
                "the adapter's payments could not be read: {e}; status.metrics holds the last figures read. Check operator.prometheus and that Prometheus scrapes the adapter"
            ),
        ),
        Reading::Read(m) => match m.success_rate {
            None => condition(
                ConditionStatus::Unknown,
                operator_core::reason!("NoTraffic"),
                format!("no payment finished in the last {window}: nothing to judge"),
            ),
            Some(rate) if rate < min => condition(
                ConditionStatus::False,
                operator_core::reason!("LowSuccessRate"),
                format!(
                    "{:.2}% of payments succeeded over the last {window}, below minSuccessRate {min}: check the partners (status.bankingPartnerStatus) and the adapter's logs",
                    rate * 100.0
                ),
            ),
            Some(rate) => condition(
                ConditionStatus::True,
                operator_core::reason!("SuccessRateMet"),
                format!(
                    "{:.2}% of payments succeeded over the last {window} (minSuccessRate {min})",
                    rate * 100.0
                ),
            ),
        },
    })
}

#[cfg(test)]
mod tests;
