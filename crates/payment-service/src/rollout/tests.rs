//! Every transition of the rollout state machine.

use super::*;
use crate::crd::{CanaryStep, DeploymentStrategy, Pause};
use crate::resources::tests::spec;
use crate::rollout::canary::canary_split;

mod canary_analysis;
mod crash_loops;

const NAME: &str = "pay";

fn rev(version: &str) -> Revision {
    Revision {
        version: version.into(),
        image: format!("pay:{version}"),
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn spec_with(strategy: StrategyType, version: &str) -> PaymentServiceSpec {
    let mut s = spec();
    s.version = version.into();
    s.image = format!("pay:{version}");
    s.autoscaling = None;
    s.replicas = 4;
    s.deployment_strategy = Some(DeploymentStrategy::of(
        strategy,
        vec![
            CanaryStep {
                set_weight: 25,
                pause: Some(Pause {
                    duration: "1m".into(),
                }),
            },
            CanaryStep {
                set_weight: 50,
                pause: None,
            },
        ],
        Some(120),
    ));
    s
}

fn ready(revision: &Revision, replicas: i32) -> DeploymentState {
    DeploymentState {
        revision: Some(revision.clone()),
        generation: 1,
        observed_generation: 1,
        replicas,
        updated_replicas: replicas,
        available_replicas: replicas,
        deadline_exceeded: false,
        crash_loop: None,
    }
}

fn stuck(revision: &Revision, replicas: i32) -> DeploymentState {
    DeploymentState {
        updated_replicas: 0,
        available_replicas: 0,
        ..ready(revision, replicas)
    }
}

struct World {
    spec: PaymentServiceSpec,
    generation: i64,
    status: PaymentServiceStatus,
    deployments: BTreeMap<String, DeploymentState>,
    /// The `payments.io/promote` annotation.
    promoted: Option<String>,
    /// The `payments.io/abort` annotation.
    aborted: Option<String>,
    /// The analysis readings the next pass gets (then cleared).
    measurements: Vec<analysis::Measurement>,
}

impl World {
    fn serving(strategy: StrategyType, version: &str) -> Self {
        let spec = spec_with(strategy, version);
        let primary = match strategy {
            StrategyType::BlueGreen => Track::Color(Color::Blue),
            _ => Track::Stable,
        };
        Self {
            deployments: BTreeMap::from([(primary.deployment_name(NAME), ready(&rev(version), 4))]),
            status: PaymentServiceStatus {
                current_version: Some(version.into()),
                current_image: Some(format!("pay:{version}")),
                active_color: (strategy == StrategyType::BlueGreen).then_some(Color::Blue),
                ..Default::default()
            },
            spec,
            generation: 1,
            promoted: None,
            aborted: None,
            measurements: Vec::new(),
        }
    }

    /// `version` serving blue-green, with `autoPromote: false`.
    fn held_blue_green(version: &str) -> Self {
        let mut w = Self::serving(StrategyType::BlueGreen, version);
        if let Some(b) = w
            .spec
            .deployment_strategy
            .as_mut()
            .and_then(|s| s.blue_green.as_mut())
        {
            b.auto_promote = Some(false);
        }
        w
    }

    fn upgrade(&mut self, version: &str) {
        self.spec.version = version.into();
        self.spec.image = format!("pay:{version}");
        self.generation += 1;
    }

    /// Plans at `now` and records the plan's status, as a reconcile would.
    fn step(&mut self, now: Timestamp) -> RolloutPlan {
        let plan = plan(&RolloutInput {
            name: NAME,
            spec: &self.spec,
            generation: self.generation,
            stable: self.status.stable(),
            rollout: self.status.rollout.as_ref(),
            failed: self.status.failed_rollout.as_ref(),
            active_color: self.status.active_color.unwrap_or_default(),
            deployments: &self.deployments,
            now,
            promoted: self.promoted.as_deref(),
            aborted: self.aborted.as_deref(),
            measurements: &std::mem::take(&mut self.measurements),
        });
        self.status.current_version = plan.stable.as_ref().map(|s| s.version.clone());
        self.status.current_image = plan.stable.as_ref().map(|s| s.image.clone());
        self.status.rollout = plan.rollout.clone();
        self.status.failed_rollout = plan.failed.clone();
        self.status.active_color = plan.active_color;
        plan
    }

    /// What the Deployment controller would make of the plan: every wanted Deployment
    /// runs its revision, available unless `failing` is its version.
    fn converge(&mut self, plan: &RolloutPlan, failing: Option<&str>) {
        self.deployments.retain(|name, _| {
            plan.workloads
                .iter()
                .any(|w| w.track.deployment_name(NAME) == *name)
                || plan.retiring.contains(name)
        });
        for w in &plan.workloads {
            let replicas = match w.replicas {
                Replicas::Fixed(n) => n,
                Replicas::Autoscaled => 4,
            };
            let state = if failing == Some(w.revision.version.as_str()) {
                stuck(&w.revision, replicas)
            } else {
                ready(&w.revision, replicas)
            };
            self.deployments
                .insert(w.track.deployment_name(NAME), state);
        }
    }
}

fn versions(plan: &RolloutPlan) -> Vec<(String, String, Replicas)> {
    plan.workloads
        .iter()
        .map(|w| {
            (
                w.track.deployment_name(NAME),
                w.revision.version.clone(),
                w.replicas,
            )
        })
        .collect()
}

#[test]
fn the_first_version_becomes_current_once_available() {
    let mut w = World::serving(StrategyType::RollingUpdate, "1.0.0");
    w.status = Default::default();
    w.deployments.clear();
    let plan = w.step(at(0));
    assert_eq!(
        versions(&plan),
        vec![("pay".into(), "1.0.0".into(), Replicas::Fixed(4))]
    );
    assert_eq!(plan.stable, None);
    w.converge(&plan, None);
    let plan = w.step(at(5));
    assert_eq!(plan.stable, Some(rev("1.0.0")));
    assert_eq!(plan.transitions, vec![Transition::Completed(rev("1.0.0"))]);
}

#[test]
fn a_rolling_update_completes_when_the_new_version_is_available() {
    let mut w = World::serving(StrategyType::RollingUpdate, "1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    assert_eq!(
        versions(&plan),
        vec![("pay".into(), "1.6.0".into(), Replicas::Fixed(4))]
    );
    assert_eq!(
        plan.stable,
        Some(rev("1.5.0")),
        "current moves only when available"
    );
    assert!(plan.rollout.is_some());
    w.converge(&plan, None);
    let plan = w.step(at(10));
    assert_eq!(plan.stable, Some(rev("1.6.0")));
    assert_eq!(plan.rollout, None);
}

#[test]
fn a_rolling_update_past_its_deadline_rolls_back_and_is_not_retried_until_the_spec_changes() {
    let mut w = World::serving(StrategyType::RollingUpdate, "1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    w.converge(&plan, Some("1.6.0"));
    let plan = w.step(at(60));
    assert_eq!(
        plan.workloads[0].revision,
        rev("1.6.0"),
        "still within the deadline"
    );
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(61)));
    let plan = w.step(at(121));
    assert_eq!(plan.workloads[0].revision, rev("1.5.0"));
    assert!(matches!(plan.transitions[0], Transition::RolledBack { .. }));
    assert_eq!(
        plan.blocking_failure(w.generation)
            .map(|f| f.target.clone()),
        Some(rev("1.6.0"))
    );
    w.converge(&plan, Some("1.6.0"));
    let plan = w.step(at(500));
    assert_eq!(plan.workloads[0].revision, rev("1.5.0"), "not tried again");
    assert!(plan.transitions.is_empty());
    w.upgrade("1.6.1");
    let plan = w.step(at(600));
    assert_eq!(
        plan.workloads[0].revision,
        rev("1.6.1"),
        "a new spec is tried"
    );
    assert_eq!(plan.blocking_failure(w.generation), None);
}

#[test]
fn the_deployments_own_deadline_counts_as_failure() {
    let mut w = World::serving(StrategyType::RollingUpdate, "1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    w.converge(&plan, Some("1.6.0"));
    if let Some(d) = w.deployments.get_mut("pay") {
        d.deadline_exceeded = true;
    }
    let plan = w.step(at(5));
    assert_eq!(plan.workloads[0].revision, rev("1.5.0"));
}

#[test]
fn a_canary_walks_its_steps_holding_each_pause_then_promotes() {
    let mut w = World::serving(StrategyType::Canary, "1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    assert_eq!(
        versions(&plan),
        vec![
            ("pay".into(), "1.5.0".into(), Replicas::Fixed(3)),
            ("pay-canary".into(), "1.6.0".into(), Replicas::Fixed(1)),
        ]
    );
    w.converge(&plan, None);
    let plan = w.step(at(30));
    assert_eq!(
        plan.requeue_after,
        Some(Duration::from_secs(31)),
        "holds the 1m pause"
    );
    assert_eq!(versions(&plan)[1].2, Replicas::Fixed(1));
    let plan = w.step(at(61));
    assert_eq!(
        versions(&plan),
        vec![
            ("pay".into(), "1.5.0".into(), Replicas::Fixed(2)),
            ("pay-canary".into(), "1.6.0".into(), Replicas::Fixed(2)),
        ]
    );
    w.converge(&plan, None);
    let plan = w.step(at(62));
    assert!(
        plan.transitions
            .contains(&Transition::Promoting(rev("1.6.0")))
    );
    assert_eq!(
        versions(&plan),
        vec![
            ("pay".into(), "1.6.0".into(), Replicas::Fixed(4)),
            ("pay-canary".into(), "1.6.0".into(), Replicas::Fixed(2)),
        ]
    );
    w.converge(&plan, None);
    let plan = w.step(at(70));
    assert_eq!(
        versions(&plan),
        vec![("pay".into(), "1.6.0".into(), Replicas::Fixed(4))]
    );
    assert_eq!(plan.stable, Some(rev("1.6.0")));
}

#[test]
fn a_canary_that_never_becomes_ready_is_aborted() {
    let mut w = World::serving(StrategyType::Canary, "1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    w.converge(&plan, Some("1.6.0"));
    let plan = w.step(at(121));
    assert_eq!(
        versions(&plan),
        vec![("pay".into(), "1.5.0".into(), Replicas::Fixed(4))]
    );
    match &plan.transitions[..] {
        [Transition::RolledBack { why, .. }] => {
            assert!(why.starts_with("canary step 1 of 2 (25%)"))
        }
        other => panic!("expected a rollback, got {other:?}"),
    }
}

#[test]
fn blue_green_switches_once_the_idle_colour_is_available() {
    let mut w = World::serving(StrategyType::BlueGreen, "1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    assert_eq!(
        versions(&plan),
        vec![
            ("pay".into(), "1.5.0".into(), Replicas::Fixed(4)),
            ("pay-green".into(), "1.6.0".into(), Replicas::Fixed(4)),
        ]
    );
    assert_eq!(plan.serving_color, Some(Color::Blue));
    w.converge(&plan, None);
    let plan = w.step(at(10));
    assert_eq!(plan.serving_color, Some(Color::Green));
    assert_eq!(
        versions(&plan),
        vec![("pay-green".into(), "1.6.0".into(), Replicas::Fixed(4))]
    );
    assert_eq!(plan.scaled, "pay-green");
    assert_eq!(plan.stable, Some(rev("1.6.0")));
}

#[test]
fn blue_green_without_auto_promotion_waits_for_the_annotation_past_any_deadline() {
    let mut w = World::held_blue_green("1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    w.converge(&plan, None);
    // Long past progressDeadlineSeconds (120 s): waiting for a person is not a failure.
    let plan = w.step(at(3600));
    assert_eq!(
        plan.serving_color,
        Some(Color::Blue),
        "traffic stays on 1.5.0"
    );
    assert_eq!(plan.awaiting_promotion, Some(rev("1.6.0")));
    assert_eq!(plan.failed, None);
    assert_eq!(
        versions(&plan),
        vec![
            ("pay".into(), "1.5.0".into(), Replicas::Fixed(4)),
            ("pay-green".into(), "1.6.0".into(), Replicas::Fixed(4)),
        ],
        "the new version keeps running on the idle colour, ready to try"
    );
    w.promoted = Some("1.5.9".into());
    assert_eq!(
        w.step(at(3601)).serving_color,
        Some(Color::Blue),
        "another version's promotion does not count"
    );
    w.promoted = Some("1.6.0".into());
    let plan = w.step(at(3602));
    assert_eq!(plan.serving_color, Some(Color::Green));
    assert_eq!(plan.stable, Some(rev("1.6.0")));
    assert_eq!(plan.awaiting_promotion, None);
}

/// The one transition of `plan` that rolled back: its version, target and cause.
fn aborted(plan: &RolloutPlan) -> Option<(String, String, FailureCause)> {
    plan.transitions.iter().find_map(|t| match t {
        Transition::RolledBack {
            failed, to, cause, ..
        } => Some((failed.version.clone(), to.version.clone(), *cause)),
        _ => None,
    })
}

#[test]
fn an_abort_rolls_back_a_canary_mid_step_and_holds_until_the_spec_changes() {
    let mut w = World::serving(StrategyType::Canary, "1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    w.converge(&plan, None);
    let plan = w.step(at(10));
    assert!(plan.rollout.is_some(), "the canary is under way");
    w.aborted = Some("1.5.9".into());
    assert!(
        aborted(&w.step(at(11))).is_none(),
        "an abort of another version does not count"
    );
    w.aborted = Some("1.6.0".into());
    let plan = w.step(at(12));
    assert_eq!(
        aborted(&plan),
        Some(("1.6.0".into(), "1.5.0".into(), FailureCause::Aborted))
    );
    assert_eq!(
        versions(&plan),
        vec![("pay".into(), "1.5.0".into(), Replicas::Fixed(4))],
        "the canary goes and the stable version takes all traffic"
    );
    assert_eq!(plan.rollout, None);
    let failed = plan
        .failed
        .clone()
        .expect("the abort is recorded as a failure");
    assert_eq!(failed.message, "aborted with payments.io/abort=1.6.0");
    w.converge(&plan, None);
    let plan = w.step(at(600));
    assert!(
        plan.transitions.is_empty() && plan.rollout.is_none(),
        "not retried while the spec stays: {plan:?}"
    );
    w.upgrade("1.6.1");
    let plan = w.step(at(601));
    assert!(plan.rollout.is_some(), "a new version rolls out");
}

#[test]
fn an_abort_drops_a_blue_green_version_waiting_for_promotion() {
    let mut w = World::held_blue_green("1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    w.converge(&plan, None);
    assert_eq!(w.step(at(30)).awaiting_promotion, Some(rev("1.6.0")));
    w.aborted = Some("1.6.0".into());
    let plan = w.step(at(31));
    assert_eq!(aborted(&plan).map(|a| a.2), Some(FailureCause::Aborted));
    assert_eq!(plan.serving_color, Some(Color::Blue), "traffic never moved");
    assert_eq!(plan.awaiting_promotion, None);
    assert_eq!(
        versions(&plan),
        vec![("pay".into(), "1.5.0".into(), Replicas::Fixed(4))]
    );
}

#[test]
fn an_abort_of_the_first_version_has_nothing_to_roll_back_to() {
    let mut w = World::serving(StrategyType::RollingUpdate, "1.5.0");
    w.status = PaymentServiceStatus::default();
    w.deployments.clear();
    w.aborted = Some("1.5.0".into());
    let plan = w.step(at(0));
    assert!(aborted(&plan).is_none());
    assert_eq!(
        versions(&plan),
        vec![("pay".into(), "1.5.0".into(), Replicas::Fixed(4))],
        "the first version keeps rolling out"
    );
}

#[test]
fn a_canary_analysis_deadline_fails_a_step_sooner_than_the_rollout_deadline() {
    let mut w = World::serving(StrategyType::Canary, "1.5.0");
    if let Some(c) = w
        .spec
        .deployment_strategy
        .as_mut()
        .and_then(|s| s.canary.as_mut())
    {
        c.analysis = Some(crate::crd::CanaryAnalysis {
            step_deadline_seconds: Some(30),
            metrics: None,
        });
    }
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    w.converge(&plan, Some("1.6.0"));
    let plan = w.step(at(20));
    assert_eq!(plan.failed, None, "within the step's 30 s");
    let plan = w.step(at(40));
    let failed = plan.failed.map(|f| f.message).unwrap_or_default();
    assert!(
        failed.contains("canary step 1 of 2") && failed.contains("(30s)"),
        "rolled back after 30 s, not the rollout's 120 s: {failed}"
    );
}

#[test]
fn blue_green_keeps_the_old_colour_serving_when_the_new_one_fails() {
    let mut w = World::serving(StrategyType::BlueGreen, "1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    w.converge(&plan, Some("1.6.0"));
    let plan = w.step(at(200));
    assert_eq!(
        versions(&plan),
        vec![("pay".into(), "1.5.0".into(), Replicas::Fixed(4))]
    );
    assert_eq!(plan.serving_color, Some(Color::Blue));
}

#[test]
fn a_change_of_strategy_keeps_the_old_deployment_serving_until_the_new_one_is_available() {
    let mut w = World::serving(StrategyType::BlueGreen, "1.5.0");
    w.upgrade("1.6.0");
    let plan = w.step(at(0));
    w.converge(&plan, None);
    let plan = w.step(at(5));
    assert_eq!(plan.serving_color, Some(Color::Green));
    w.converge(&plan, None);

    w.spec.deployment_strategy =
        spec_with(StrategyType::RollingUpdate, "1.6.0").deployment_strategy;
    w.generation += 1;
    let plan = w.step(at(10));
    assert_eq!(
        versions(&plan),
        vec![("pay".into(), "1.6.0".into(), Replicas::Fixed(4))]
    );
    assert_eq!(
        plan.retiring,
        vec!["pay-green".to_string()],
        "green serves until pay is up"
    );
    w.converge(&plan, None);
    let plan = w.step(at(15));
    assert!(plan.retiring.is_empty());
}

#[test]
fn blue_is_the_deployment_named_after_the_service() {
    assert_eq!(Track::Color(Color::Blue).deployment_name("pay"), "pay");
    assert_eq!(Track::Color(Color::Blue).label(), Track::Stable.label());
    assert_eq!(
        Track::Color(Color::Green).deployment_name("pay"),
        "pay-green"
    );
}

#[test]
fn canary_split_never_overflows_on_what_the_cluster_reports() {
    assert_eq!(
        canary_split(Replicas::Autoscaled, i32::MAX, 99),
        (Replicas::Autoscaled, i32::MAX)
    );
    assert_eq!(
        canary_split(Replicas::Fixed(i32::MAX), i32::MAX, 50).1,
        i32::MAX / 100 + 1
    );
}

#[test]
fn canary_split_keeps_a_stable_replica_until_the_last_weight() {
    assert_eq!(
        canary_split(Replicas::Fixed(4), 4, 10),
        (Replicas::Fixed(3), 1)
    );
    assert_eq!(
        canary_split(Replicas::Fixed(1), 1, 50),
        (Replicas::Fixed(1), 1)
    );
    assert_eq!(
        canary_split(Replicas::Fixed(10), 10, 100),
        (Replicas::Fixed(0), 10)
    );
    assert_eq!(
        canary_split(Replicas::Fixed(0), 0, 50),
        (Replicas::Fixed(0), 0)
    );
    assert_eq!(
        canary_split(Replicas::Autoscaled, 6, 25),
        (Replicas::Autoscaled, 2)
    );
    assert_eq!(
        canary_split(Replicas::Autoscaled, 6, 100),
        (Replicas::Autoscaled, 6)
    );
}
