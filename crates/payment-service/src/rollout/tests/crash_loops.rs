//! A version whose pods crash-loop is rolled back as soon as a pass sees it, under every
//! strategy, long before `progressDeadlineSeconds` (120 s in these specs).

use super::*;

const CRASH: &str = "pod pay-7f9c-x crash-loops: container payment-service is in CrashLoopBackOff after 3 restarts, last exit code 1 (Error)";

impl World {
    /// The pods of every Deployment running `version` crash-loop.
    fn crash(&mut self, version: &str) {
        for state in self.deployments.values_mut() {
            if state
                .revision
                .as_ref()
                .is_some_and(|r| r.version == version)
            {
                state.crash_loop = Some(CRASH.into());
            }
        }
    }
}

fn rolled_back(plan: &RolloutPlan) -> (&str, FailureCause) {
    match &plan.transitions[..] {
        [Transition::RolledBack { why, cause, .. }] => (why, *cause),
        other => panic!("expected a rollback, got {other:?}"),
    }
}

#[test]
fn a_rolling_update_whose_pods_crash_loop_rolls_back_at_once() {
    let mut w = World::serving(StrategyType::RollingUpdate, "1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    assert!(
        plan.rollout.is_some(),
        "a rollout in progress: pods are looked at"
    );
    w.converge(&plan, Some("1.6.0"));
    w.crash("1.6.0");
    let plan = w.step(at(15));
    assert_eq!(plan.workloads[0].revision, rev("1.5.0"));
    assert_eq!(rolled_back(&plan), (CRASH, FailureCause::CrashLoop));
    assert_eq!(
        plan.blocking_failure(w.generation)
            .map(|f| f.message.as_str()),
        Some(CRASH)
    );
}

#[test]
fn a_canary_whose_pods_crash_loop_is_aborted_at_once() {
    let mut w = World::serving(StrategyType::Canary, "1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    w.converge(&plan, Some("1.6.0"));
    w.crash("1.6.0");
    let plan = w.step(at(10));
    assert_eq!(
        versions(&plan),
        vec![("pay".into(), "1.5.0".into(), Replicas::Fixed(4))]
    );
    let (why, cause) = rolled_back(&plan);
    assert_eq!(why, format!("canary step 1 of 2 (25%): {CRASH}"));
    assert_eq!(cause, FailureCause::CrashLoop);
}

#[test]
fn a_blue_green_idle_colour_whose_pods_crash_loop_is_abandoned_before_any_switch() {
    let mut w = World::serving(StrategyType::BlueGreen, "1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    w.converge(&plan, Some("1.6.0"));
    w.crash("1.6.0");
    let plan = w.step(at(10));
    assert_eq!(rolled_back(&plan).1, FailureCause::CrashLoop);
    assert_eq!(plan.serving_color, Some(Color::Blue), "traffic never moved");
    assert_eq!(
        versions(&plan),
        vec![("pay".into(), "1.5.0".into(), Replicas::Fixed(4))]
    );
}

#[test]
fn a_crash_loop_of_the_serving_version_does_not_fail_the_new_one() {
    let mut w = World::serving(StrategyType::Canary, "1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    w.converge(&plan, Some("1.6.0"));
    w.crash("1.5.0");
    let plan = w.step(at(10));
    assert!(plan.transitions.is_empty(), "{:?}", plan.transitions);
    assert!(plan.rollout.is_some());
}

#[test]
fn a_first_version_whose_pods_crash_loop_fails_at_once() {
    let mut w = World::serving(StrategyType::RollingUpdate, "1.5.0");
    w.status = PaymentServiceStatus::default();
    w.deployments.clear();
    let plan = w.step(at(0));
    w.converge(&plan, Some("1.5.0"));
    w.crash("1.5.0");
    let plan = w.step(at(10));
    match &plan.transitions[..] {
        [Transition::FirstVersionFailed { why, cause, .. }] => {
            assert_eq!((why.as_str(), *cause), (CRASH, FailureCause::CrashLoop));
        }
        other => panic!("expected the first version to fail, got {other:?}"),
    }
}
