//! Canary analysis: each metric of `canary.analysis.metrics` measured every `interval` while
//! a step's canary is available, and the step judged from what was measured in it — passed
//! when every metric has met its success condition at least once, failed when one has missed
//! it more than its `failureLimit`, pending otherwise. A measurement that cannot be judged
//! (Prometheus unreachable, no series) counts as inconclusive: it never passes a step, so an
//! analysis that cannot read holds the rollout rather than promote it.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use operator_core::duration::go_duration;

use super::{Transition, elapsed};
use crate::crd::{AnalysisMetric, MetricAnalysis, Revision};

/// How often a metric is measured unless it says.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// One metric's reading this pass: a number, or why there is none.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub metric: String,
    pub reading: Result<f64, String>,
}

/// A metric's `successCondition`, read: `result <comparison> <threshold>`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SuccessCondition {
    comparison: Comparison,
    threshold: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
    NotEqual,
}

impl SuccessCondition {
    /// Reads `result >= 0.99` and the like (the CRD's pattern admits nothing else); `None`
    /// for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.trim().strip_prefix("result")?.trim_start();
        let (comparison, number) = [
            ("<=", Comparison::LessOrEqual),
            (">=", Comparison::GreaterOrEqual),
            ("==", Comparison::Equal),
            ("!=", Comparison::NotEqual),
            ("<", Comparison::Less),
            (">", Comparison::Greater),
        ]
        .into_iter()
        .find_map(|(op, c)| rest.strip_prefix(op).map(|n| (c, n)))?;
        let threshold: f64 = number.trim().parse().ok()?;
        threshold.is_finite().then_some(Self {
            comparison,
            threshold,
        })
    }

    pub fn holds(self, value: f64) -> bool {
        let t = self.threshold;
        match self.comparison {
            Comparison::Less => value < t,
            Comparison::LessOrEqual => value <= t,
            Comparison::Greater => value > t,
            Comparison::GreaterOrEqual => value >= t,
            Comparison::Equal => value == t,
            Comparison::NotEqual => value != t,
        }
    }
}

/// How often `metric` is measured.
pub fn interval(metric: &AnalysisMetric) -> Duration {
    metric
        .interval
        .as_deref()
        .and_then(|i| go_duration(i).ok())
        .unwrap_or(DEFAULT_INTERVAL)
}

/// Whether `metric` is due for a measurement, given what the step has recorded of it.
pub fn due(metric: &AnalysisMetric, recorded: &[MetricAnalysis], now: Timestamp) -> bool {
    recorded
        .iter()
        .find(|r| r.name == metric.name)
        .and_then(|r| r.measured_at.as_ref())
        .is_none_or(|at| elapsed(at, now) >= interval(metric))
}

/// `metric`'s query for the service `service` in `namespace` testing `target`.
pub fn query(metric: &AnalysisMetric, namespace: &str, service: &str, target: &Revision) -> String {
    metric
        .query
        .replace("{{namespace}}", namespace)
        .replace("{{service}}", service)
        .replace("{{version}}", &target.version)
}

/// What the step's analysis says.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Every metric has passed at least once in this step.
    Passed,
    /// Not yet: look again after this long.
    Pending(Duration),
    /// A metric failed more than its limit, in words.
    Failed(String),
}

/// The step's analysis after this pass's measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct StepAnalysis {
    pub results: Vec<MetricAnalysis>,
    pub verdict: Verdict,
    /// A metric that turned inconclusive this pass (worth an event).
    pub transitions: Vec<Transition>,
}

const SUCCESSFUL: &str = "Successful";
const FAILED: &str = "Failed";
const INCONCLUSIVE: &str = "Inconclusive";

/// Adds this pass's `measurements` to what the step `recorded`, and judges the step.
pub fn judge(
    metrics: &[AnalysisMetric],
    recorded: &[MetricAnalysis],
    measurements: &[Measurement],
    now: Timestamp,
) -> StepAnalysis {
    let mut results = Vec::with_capacity(metrics.len());
    let mut transitions = Vec::new();
    let mut failure = None;
    let mut next = Duration::MAX;
    for metric in metrics {
        let mut result = recorded
            .iter()
            .find(|r| r.name == metric.name)
            .cloned()
            .unwrap_or_else(|| MetricAnalysis {
                name: metric.name.clone(),
                ..MetricAnalysis::default()
            });
        if let Some(m) = measurements.iter().find(|m| m.metric == metric.name) {
            let was_inconclusive = result.phase == INCONCLUSIVE;
            record(&mut result, metric, &m.reading, now);
            if result.phase == INCONCLUSIVE && !was_inconclusive {
                transitions.push(Transition::AnalysisInconclusive {
                    metric: metric.name.clone(),
                    why: result.message.clone().unwrap_or_default(),
                });
            }
        }
        let limit = metric.failure_limit.unwrap_or(0).max(0);
        if result.failed > limit && failure.is_none() {
            failure = Some(format!(
                "analysis metric {} failed {} time(s), more than its failureLimit {limit}: {}",
                metric.name,
                result.failed,
                result.message.as_deref().unwrap_or_default()
            ));
        }
        if result.successful == 0 {
            // Unmeasured: the canary just became available; measure on the next pass.
            let wait = result.measured_at.as_ref().map_or(Duration::ZERO, |at| {
                interval(metric).saturating_sub(elapsed(at, now))
            });
            next = next.min(wait.max(Duration::from_secs(1)));
        }
        results.push(result);
    }
    let verdict = match failure {
        Some(why) => Verdict::Failed(why),
        None if next == Duration::MAX => Verdict::Passed,
        None => Verdict::Pending(next),
    };
    StepAnalysis {
        results,
        verdict,
        transitions,
    }
}

fn record(
    result: &mut MetricAnalysis,
    metric: &AnalysisMetric,
    reading: &Result<f64, String>,
    now: Timestamp,
) {
    result.measured_at = Some(Time(now));
    let condition = SuccessCondition::parse(&metric.success_condition);
    match (reading, condition) {
        (Ok(value), Some(condition)) if value.is_finite() => {
            result.value = Some(value.to_string());
            if condition.holds(*value) {
                result.successful += 1;
                result.phase = SUCCESSFUL.into();
                result.message = Some(format!("{value} meets `{}`", metric.success_condition));
            } else {
                result.failed += 1;
                result.phase = FAILED.into();
                result.message = Some(format!(
                    "{value} does not meet `{}`",
                    metric.success_condition
                ));
            }
        }
        (Ok(value), Some(_)) => {
            result.inconclusive += 1;
            result.phase = INCONCLUSIVE.into();
            result.value = Some(value.to_string());
            result.message = Some(format!(
                "the query answered {value}, which no condition can judge (no traffic to the canary yet?)"
            ));
        }
        (Ok(_), None) => {
            result.inconclusive += 1;
            result.phase = INCONCLUSIVE.into();
            result.message = Some(format!(
                "successCondition {:?} does not read: write it as `result >= 0.99`",
                metric.success_condition
            ));
        }
        (Err(why), _) => {
            result.inconclusive += 1;
            result.phase = INCONCLUSIVE.into();
            result.message = Some(why.clone());
        }
    }
}
