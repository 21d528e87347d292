//! A canary step with analysis metrics moves on only when every metric has passed in it,
//! rolls back when one fails past its limit, and holds — never promotes — while a metric
//! cannot be judged.

use super::*;
use crate::crd::{AnalysisMetric, CanaryAnalysis};
use crate::rollout::analysis::{Measurement, SuccessCondition};
use crate::rollout::tests::World;

fn metric(name: &str, condition: &str, failure_limit: Option<i32>) -> AnalysisMetric {
    AnalysisMetric {
        name: name.into(),
        query: r#"payment:success_rate{namespace="{{namespace}}",service="{{service}}",version="{{version}}"}"#.into(),
        success_condition: condition.into(),
        interval: Some("30s".into()),
        failure_limit,
    }
}

/// A canary (25% for 1m, then 50%) judged by `metrics`, upgraded to 1.6.0 and its first
/// step's canary available at 0 s.
fn analysed(metrics: Vec<AnalysisMetric>) -> World {
    let mut w = World::serving(StrategyType::Canary, "1.5.0");
    if let Some(c) = w
        .spec
        .deployment_strategy
        .as_mut()
        .and_then(|s| s.canary.as_mut())
    {
        c.analysis = Some(CanaryAnalysis {
            step_deadline_seconds: None,
            metrics: Some(metrics),
        });
    }
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    w.converge(&plan, None);
    w
}

fn read(w: &mut World, metric: &str, reading: Result<f64, String>) {
    w.measurements.push(Measurement {
        metric: metric.into(),
        reading,
    });
}

fn step_of(w: &World) -> Option<i32> {
    w.status.rollout.as_ref().and_then(|r| r.step)
}

#[test]
fn success_conditions_read_every_comparison() {
    let holds = |c: &str, v: f64| SuccessCondition::parse(c).map(|c| c.holds(v));
    assert_eq!(holds("result >= 0.99", 0.99), Some(true));
    assert_eq!(holds("result>=0.99", 0.98), Some(false));
    assert_eq!(holds("result < 2", 1.5), Some(true));
    assert_eq!(holds("result <= -1", -1.0), Some(true));
    assert_eq!(holds("result > 100", 100.0), Some(false));
    assert_eq!(holds("result == 0", 0.0), Some(true));
    assert_eq!(holds("result != 0", 0.0), Some(false));
    assert_eq!(holds("value >= 1", 1.0), None);
    assert_eq!(holds("result ~ 1", 1.0), None);
}

#[test]
fn a_step_waits_for_every_metric_to_pass_then_its_pause_then_moves_on() {
    let mut w = analysed(vec![
        metric("success-rate", "result >= 0.95", None),
        metric("latency-p99", "result < 0.5", None),
    ]);
    read(&mut w, "success-rate", Ok(0.99));
    let plan = w.step(at(61));
    assert_eq!(step_of(&w), Some(0), "latency has not been measured yet");
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(1)));
    let analysis = w
        .status
        .rollout
        .as_ref()
        .and_then(|r| r.analysis.clone())
        .unwrap_or_default();
    assert_eq!(analysis[0].successful, 1);
    assert_eq!(
        analysis[0].message.as_deref(),
        Some("0.99 meets `result >= 0.95`")
    );
    assert_eq!(analysis[1].phase, "");
    read(&mut w, "latency-p99", Ok(0.2));
    let plan = w.step(at(62));
    assert_eq!(step_of(&w), Some(1), "both passed and the 1m pause is over");
    assert!(plan.transitions.contains(&Transition::CanaryStep {
        step: 2,
        steps: 2,
        weight: 50
    }));
    assert_eq!(
        w.status.rollout.as_ref().and_then(|r| r.analysis.clone()),
        None,
        "a new step starts afresh"
    );
}

#[test]
fn a_metric_failing_past_its_limit_rolls_the_version_back() {
    let mut w = analysed(vec![metric("success-rate", "result >= 0.95", Some(1))]);
    read(&mut w, "success-rate", Ok(0.9));
    let plan = w.step(at(30));
    assert_eq!(plan.failed, None, "one failure is within the limit of 1");
    read(&mut w, "success-rate", Ok(0.8));
    let plan = w.step(at(60));
    let failed = plan.failed.clone().map(|f| f.message).unwrap_or_default();
    assert_eq!(
        failed,
        "canary step 1 of 2 (25%): analysis metric success-rate failed 2 time(s), more than its failureLimit 1: 0.8 does not meet `result >= 0.95`"
    );
    assert!(matches!(
        plan.transitions.as_slice(),
        [Transition::RolledBack {
            cause: FailureCause::Analysis,
            ..
        }]
    ));
    assert_eq!(
        versions(&plan),
        [(NAME.to_string(), "1.5.0".to_string(), Replicas::Fixed(4))]
    );
}

#[test]
fn a_metric_that_cannot_be_judged_holds_the_step_and_never_promotes() {
    let mut w = analysed(vec![metric("success-rate", "result >= 0.95", None)]);
    read(
        &mut w,
        "success-rate",
        Err("Prometheus at http://prometheus:9090 could not be reached: connection refused".into()),
    );
    let plan = w.step(at(30));
    assert!(matches!(
        plan.transitions.as_slice(),
        [Transition::AnalysisInconclusive { metric, why }] if metric == "success-rate" && why.contains("connection refused")
    ));
    for t in [60, 90, 600, 6000] {
        read(&mut w, "success-rate", Err("no series".into()));
        let plan = w.step(at(t));
        assert_eq!(step_of(&w), Some(0), "held at {t}s");
        assert!(
            plan.transitions.is_empty(),
            "one event when it turns inconclusive: {:?}",
            plan.transitions
        );
        assert_eq!(plan.failed, None);
    }
    read(&mut w, "success-rate", Ok(f64::NAN));
    w.step(at(6030));
    let analysis = w
        .status
        .rollout
        .as_ref()
        .and_then(|r| r.analysis.clone())
        .unwrap_or_default();
    assert_eq!(analysis[0].inconclusive, 6);
    assert_eq!(step_of(&w), Some(0), "NaN (no traffic) judges nothing");
    read(&mut w, "success-rate", Ok(0.97));
    w.step(at(6060));
    assert_eq!(step_of(&w), Some(1), "it reads again: the step moves on");
}
