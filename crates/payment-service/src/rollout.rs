//! Rollouts as a pure state machine: from the spec, the status the last pass recorded, what
//! the Deployments report, and the time, decide which Deployments should exist running which
//! version with how many replicas, where the Service sends traffic, and what the status
//! records next. No client: every transition is a unit test.
//!
//! - **RollingUpdate**: the Deployment `<name>` moves to the new version with its own rolling
//!   update.
//! - **Canary**: `<name>-canary` runs the new version beside the stable `<name>`; the Service
//!   selects both, so traffic follows the replica ratio. Each step holds for its pause once
//!   the canary is available; after the last step `<name>` is promoted to the new version and
//!   the canary goes once it is available.
//! - **BlueGreen**: the new version comes up in full as the idle colour (blue is `<name>`,
//!   green `<name>-green`); once it is available the Service switches to it and the old
//!   colour goes.
//!
//! A rollout that is not available within `progressDeadlineSeconds` (of its start, or of the
//! canary step) — a failing readiness probe, a crash loop, an image that does not pull — is
//! rolled back to the last version that was, and is not tried again until the spec changes.
//! What triggers a rollout is a new `version` or `image`; other changes (configuration,
//! resources, probes) roll the serving Deployment in place.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use operator_core::runtime::config::parse_duration;

use crate::crd::{
    Color, FailedRollout, PaymentService, PaymentServiceSpec, PaymentServiceStatus, Revision,
    Rollout, StrategyType,
};

/// Which part a Deployment plays; also the value of its pods' `payments.io/track` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    Stable,
    Canary,
    Color(Color),
}

impl Track {
    /// Blue is the stable Deployment itself, so the Deployment named after the service
    /// exists under every strategy most of the time, and a switch between RollingUpdate or
    /// Canary and BlueGreen (while blue is active) changes nothing that runs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Stable | Self::Color(Color::Blue) => "stable",
            Self::Canary => "canary",
            Self::Color(Color::Green) => "green",
        }
    }

    /// The Deployment's name for a service called `name`: `<name>`, `<name>-canary` or
    /// `<name>-green`.
    pub fn deployment_name(self, name: &str) -> String {
        match self {
            Self::Stable | Self::Color(Color::Blue) => name.to_string(),
            other => format!("{name}-{}", other.label()),
        }
    }
}

/// How many replicas a Deployment runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replicas {
    Fixed(i32),
    /// The autoscaler decides; the operator does not set `replicas`.
    Autoscaled,
}

/// One Deployment the service should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub track: Track,
    pub revision: Revision,
    pub replicas: Replicas,
}

/// What a Deployment reports, as far as rollouts care.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploymentState {
    /// The version label and image of its pod template.
    pub revision: Option<Revision>,
    pub generation: i64,
    pub observed_generation: i64,
    /// Replicas it is asked to run.
    pub replicas: i32,
    pub updated_replicas: i32,
    pub available_replicas: i32,
    /// Its own `Progressing=False/ProgressDeadlineExceeded`.
    pub deadline_exceeded: bool,
}

impl DeploymentState {
    /// Every replica runs `revision` and is available.
    pub fn is_complete(&self, revision: &Revision) -> bool {
        self.revision.as_ref() == Some(revision)
            && self.observed_generation >= self.generation
            && self.updated_replicas >= self.replicas
            && self.available_replicas >= self.replicas
    }

    fn reports_deadline_exceeded(&self, revision: &Revision) -> bool {
        self.revision.as_ref() == Some(revision)
            && self.observed_generation >= self.generation
            && self.deadline_exceeded
    }
}

/// A change worth an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    Started {
        target: Revision,
        strategy: StrategyType,
    },
    CanaryStep {
        step: usize,
        steps: usize,
        weight: i32,
    },
    Promoting(Revision),
    Switched {
        color: Color,
        target: Revision,
    },
    Completed(Revision),
    RolledBack {
        failed: Revision,
        to: Revision,
        why: String,
    },
    /// The first version never became available: there is nothing to roll back to.
    FirstVersionFailed {
        failed: Revision,
        why: String,
    },
}

/// The inputs of one decision.
#[derive(Clone, Debug)]
pub struct RolloutInput<'a> {
    pub name: &'a str,
    pub spec: &'a PaymentServiceSpec,
    pub generation: i64,
    pub stable: Option<Revision>,
    pub rollout: Option<&'a Rollout>,
    pub failed: Option<&'a FailedRollout>,
    pub active_color: Color,
    /// The service's Deployments by name.
    pub deployments: &'a BTreeMap<String, DeploymentState>,
    pub now: Timestamp,
}

impl<'a> RolloutInput<'a> {
    /// The inputs for `ps` as it stands: its name, spec, generation and recorded status.
    pub fn of(
        ps: &'a PaymentService,
        deployments: &'a BTreeMap<String, DeploymentState>,
        now: Timestamp,
    ) -> Self {
        let status = ps.status.as_ref();
        Self {
            name: ps.metadata.name.as_deref().unwrap_or_default(),
            spec: &ps.spec,
            generation: ps.metadata.generation.unwrap_or(0),
            stable: status.and_then(PaymentServiceStatus::stable),
            rollout: status.and_then(|s| s.rollout.as_ref()),
            failed: status.and_then(|s| s.failed_rollout.as_ref()),
            active_color: status.and_then(|s| s.active_color).unwrap_or_default(),
            deployments,
            now,
        }
    }
}

/// The decision.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutPlan {
    pub workloads: Vec<Workload>,
    /// Deployments that are not wanted any more but keep serving until the new ones are
    /// available (after a change of strategy); the Service selects them too meanwhile.
    pub retiring: Vec<String>,
    /// BlueGreen: the colour the Service selects.
    pub serving_color: Option<Color>,
    /// The Deployment the autoscaler scales.
    pub scaled: String,
    pub stable: Option<Revision>,
    pub rollout: Option<Rollout>,
    pub failed: Option<FailedRollout>,
    pub active_color: Option<Color>,
    pub transitions: Vec<Transition>,
    /// When to look again, if before the resync (a pause ends, a deadline passes).
    pub requeue_after: Option<Duration>,
}

impl RolloutPlan {
    /// The failure that blocks the current spec, if any.
    pub fn blocking_failure(&self, generation: i64) -> Option<&FailedRollout> {
        self.failed.as_ref().filter(|f| f.generation == generation)
    }
}

fn elapsed(since: &Time, now: Timestamp) -> Duration {
    let secs = now.duration_since(since.0).as_secs_f64();
    Duration::from_secs_f64(secs.max(0.0))
}

/// Replicas of the stable and the canary Deployment at `weight` percent.
/// Autoscaled: the autoscaler sizes the stable Deployment and the canary is added beside it
/// (`observed` is the stable Deployment's current size). Fixed: `total` is split, keeping at
/// least one stable replica until the weight is 100.
pub fn canary_split(total: Replicas, observed: i32, weight: i32) -> (Replicas, i32) {
    let weight = weight.clamp(1, 100);
    match total {
        Replicas::Autoscaled => {
            let stable = observed.max(1);
            let canary = if weight >= 100 {
                stable
            } else {
                ceil_div(stable.saturating_mul(weight), 100 - weight).max(1)
            };
            (Replicas::Autoscaled, canary)
        }
        Replicas::Fixed(total) if total <= 0 => (Replicas::Fixed(0), 0),
        Replicas::Fixed(total) => {
            let canary = ceil_div(total.saturating_mul(weight), 100).clamp(1, total);
            let stable = if weight >= 100 {
                0
            } else {
                (total - canary).max(1)
            };
            (Replicas::Fixed(stable), canary)
        }
    }
}

/// `a / b` rounded up, for `a >= 0`, `b > 0`; never overflows (replica counts come from
/// the cluster, so they are not trusted to be small).
fn ceil_div(a: i32, b: i32) -> i32 {
    a / b + i32::from(a % b != 0)
}

/// Decides this pass's Deployments and the rollout's next state.
pub fn plan(input: &RolloutInput<'_>) -> RolloutPlan {
    let spec = input.spec;
    let target = Revision::of(spec);
    let strategy = spec.strategy();
    let full = match spec.autoscaling() {
        Some(_) => Replicas::Autoscaled,
        None => Replicas::Fixed(spec.replicas),
    };
    let deadline =
        Duration::from_secs(u64::try_from(spec.progress_deadline_seconds()).unwrap_or(600));
    let active = input.active_color;
    let primary = match strategy {
        StrategyType::BlueGreen => Track::Color(active),
        _ => Track::Stable,
    };
    let state = |track: Track| {
        input
            .deployments
            .get(&track.deployment_name(input.name))
            .cloned()
            .unwrap_or_default()
    };
    let blocked = input
        .failed
        .filter(|f| f.generation == input.generation && f.target == target);

    let mut plan = RolloutPlan {
        workloads: Vec::new(),
        retiring: Vec::new(),
        serving_color: (strategy == StrategyType::BlueGreen).then_some(active),
        scaled: primary.deployment_name(input.name),
        stable: input.stable.clone(),
        rollout: None,
        failed: input.failed.cloned(),
        active_color: (strategy == StrategyType::BlueGreen).then_some(active),
        transitions: Vec::new(),
        requeue_after: None,
    };
    let serve = |revision: &Revision| Workload {
        track: primary,
        revision: revision.clone(),
        replicas: full,
    };

    // The rollout in progress continues only while it still rolls out this target with this
    // strategy; otherwise a new one starts now.
    let rollout = input
        .rollout
        .filter(|r| r.target == target && r.strategy == strategy)
        .cloned();
    let start = |plan: &mut RolloutPlan| {
        plan.transitions.push(Transition::Started {
            target: target.clone(),
            strategy,
        });
        Rollout {
            target: target.clone(),
            strategy,
            started_at: Time(input.now),
            step: (strategy == StrategyType::Canary).then_some(0),
            step_started_at: (strategy == StrategyType::Canary).then_some(Time(input.now)),
        }
    };

    match input.stable.clone() {
        // The first version: nothing serves yet, so there is nothing to shift traffic from.
        None => {
            plan.workloads.push(serve(&target));
            if let Some(failed) = blocked {
                plan.failed = Some(failed.clone());
            } else if state(primary).is_complete(&target) {
                plan.stable = Some(target.clone());
                plan.failed = None;
                plan.transitions.push(Transition::Completed(target));
            } else {
                let rollout = match rollout {
                    Some(r) => r,
                    None => Rollout {
                        step: None,
                        step_started_at: None,
                        ..start(&mut plan)
                    },
                };
                match overdue(
                    &state(primary),
                    &target,
                    &rollout.started_at,
                    input.now,
                    deadline,
                ) {
                    Some(why) => {
                        plan.failed = Some(failure(&target, input, &why));
                        plan.transitions.push(Transition::FirstVersionFailed {
                            failed: target,
                            why,
                        });
                    }
                    None => {
                        plan.requeue_after = remaining(&rollout.started_at, input.now, deadline);
                        plan.rollout = Some(rollout);
                    }
                }
            }
        }
        Some(stable) if stable == target || blocked.is_some() => {
            plan.workloads.push(serve(&stable));
        }
        Some(stable) => {
            let rollout = match rollout {
                Some(r) => r,
                None => start(&mut plan),
            };
            match strategy {
                StrategyType::RollingUpdate => {
                    rolling_update(&mut plan, input, &stable, &target, rollout, deadline, full)
                }
                StrategyType::BlueGreen => {
                    blue_green(&mut plan, input, &stable, &target, rollout, deadline, full)
                }
                StrategyType::Canary => {
                    canary(&mut plan, input, &stable, &target, rollout, deadline, full)
                }
            }
        }
    }
    plan.retiring = retiring(input, &plan, &state(primary));
    plan
}

/// Why a rollout of `target` on a Deployment counts as failed, if it does.
fn overdue(
    state: &DeploymentState,
    target: &Revision,
    since: &Time,
    now: Timestamp,
    deadline: Duration,
) -> Option<String> {
    if state.is_complete(target) {
        return None;
    }
    let available = format!(
        "{} of {} replicas available",
        state.available_replicas.min(state.replicas),
        state.replicas
    );
    if state.reports_deadline_exceeded(target) {
        return Some(format!(
            "the Deployment reports ProgressDeadlineExceeded ({available})"
        ));
    }
    (elapsed(since, now) > deadline).then(|| {
        format!(
            "not available within progressDeadlineSeconds ({}s): {available}",
            deadline.as_secs()
        )
    })
}

fn remaining(since: &Time, now: Timestamp, wait: Duration) -> Option<Duration> {
    Some(wait.saturating_sub(elapsed(since, now)) + Duration::from_secs(1))
}

fn failure(target: &Revision, input: &RolloutInput<'_>, why: &str) -> FailedRollout {
    FailedRollout {
        target: target.clone(),
        generation: input.generation,
        message: why.to_string(),
        at: Time(input.now),
    }
}

fn roll_back(
    plan: &mut RolloutPlan,
    input: &RolloutInput<'_>,
    stable: &Revision,
    target: &Revision,
    why: String,
) {
    plan.failed = Some(failure(target, input, &why));
    plan.rollout = None;
    plan.transitions.push(Transition::RolledBack {
        failed: target.clone(),
        to: stable.clone(),
        why,
    });
}

fn complete(plan: &mut RolloutPlan, target: &Revision) {
    plan.stable = Some(target.clone());
    plan.rollout = None;
    plan.failed = None;
    plan.transitions.push(Transition::Completed(target.clone()));
}

fn rolling_update(
    plan: &mut RolloutPlan,
    input: &RolloutInput<'_>,
    stable: &Revision,
    target: &Revision,
    rollout: Rollout,
    deadline: Duration,
    full: Replicas,
) {
    let name = Track::Stable.deployment_name(input.name);
    let state = input.deployments.get(&name).cloned().unwrap_or_default();
    let workload = |revision: &Revision| Workload {
        track: Track::Stable,
        revision: revision.clone(),
        replicas: full,
    };
    if state.is_complete(target) {
        plan.workloads.push(workload(target));
        complete(plan, target);
    } else if let Some(why) = overdue(&state, target, &rollout.started_at, input.now, deadline) {
        plan.workloads.push(workload(stable));
        roll_back(plan, input, stable, target, why);
    } else {
        plan.workloads.push(workload(target));
        plan.requeue_after = remaining(&rollout.started_at, input.now, deadline);
        plan.rollout = Some(rollout);
    }
}

fn blue_green(
    plan: &mut RolloutPlan,
    input: &RolloutInput<'_>,
    stable: &Revision,
    target: &Revision,
    rollout: Rollout,
    deadline: Duration,
    full: Replicas,
) {
    let active = Track::Color(input.active_color);
    let idle_color = input.active_color.other();
    let idle = Track::Color(idle_color);
    let active_state = input
        .deployments
        .get(&active.deployment_name(input.name))
        .cloned()
        .unwrap_or_default();
    let idle_state = input
        .deployments
        .get(&idle.deployment_name(input.name))
        .cloned()
        .unwrap_or_default();
    // The new colour starts at the size the active one runs at, so it can take all traffic.
    let preview_replicas = match full {
        Replicas::Fixed(n) => Replicas::Fixed(n),
        Replicas::Autoscaled => {
            Replicas::Fixed(active_state.replicas.max(input.spec.min_replicas()).max(1))
        }
    };
    if idle_state.is_complete(target) {
        plan.workloads.push(Workload {
            track: idle,
            revision: target.clone(),
            replicas: full,
        });
        plan.serving_color = Some(idle_color);
        plan.active_color = Some(idle_color);
        plan.scaled = idle.deployment_name(input.name);
        plan.transitions.push(Transition::Switched {
            color: idle_color,
            target: target.clone(),
        });
        complete(plan, target);
        return;
    }
    plan.workloads.push(Workload {
        track: active,
        revision: stable.clone(),
        replicas: full,
    });
    if let Some(why) = overdue(
        &idle_state,
        target,
        &rollout.started_at,
        input.now,
        deadline,
    ) {
        roll_back(plan, input, stable, target, why);
    } else {
        plan.workloads.push(Workload {
            track: idle,
            revision: target.clone(),
            replicas: preview_replicas,
        });
        plan.requeue_after = remaining(&rollout.started_at, input.now, deadline);
        plan.rollout = Some(rollout);
    }
}

fn canary(
    plan: &mut RolloutPlan,
    input: &RolloutInput<'_>,
    stable: &Revision,
    target: &Revision,
    mut rollout: Rollout,
    deadline: Duration,
    full: Replicas,
) {
    let steps = input.spec.canary_steps();
    let stable_state = input
        .deployments
        .get(&Track::Stable.deployment_name(input.name))
        .cloned()
        .unwrap_or_default();
    let canary_state = input
        .deployments
        .get(&Track::Canary.deployment_name(input.name))
        .cloned()
        .unwrap_or_default();
    let mut step = usize::try_from(rollout.step.unwrap_or(0)).unwrap_or(0);
    let mut step_started = rollout
        .step_started_at
        .clone()
        .unwrap_or_else(|| rollout.started_at.clone());
    let weight_at = |step: usize| {
        steps
            .get(step.min(steps.len().saturating_sub(1)))
            .map_or(100, |s| s.set_weight)
    };

    // Walk the steps: a step whose canary is available and whose pause is over moves on now.
    while step < steps.len() {
        let (_, canary_replicas) = canary_split(full, stable_state.replicas, weight_at(step));
        let canary_ready =
            canary_state.is_complete(target) && canary_state.replicas >= canary_replicas;
        if !canary_ready {
            if let Some(why) = overdue(&canary_state, target, &step_started, input.now, deadline) {
                plan.workloads.push(Workload {
                    track: Track::Stable,
                    revision: stable.clone(),
                    replicas: full,
                });
                let why = format!(
                    "canary step {} of {} ({}%): {why}",
                    step + 1,
                    steps.len(),
                    weight_at(step)
                );
                roll_back(plan, input, stable, target, why);
                return;
            }
            plan.requeue_after = remaining(&step_started, input.now, deadline);
            break;
        }
        let pause = steps[step]
            .pause
            .as_ref()
            .and_then(|p| parse_duration(&p.duration))
            .unwrap_or_default();
        if elapsed(&step_started, input.now) < pause {
            plan.requeue_after = remaining(&step_started, input.now, pause);
            break;
        }
        step += 1;
        step_started = Time(input.now);
        if step < steps.len() {
            plan.transitions.push(Transition::CanaryStep {
                step: step + 1,
                steps: steps.len(),
                weight: weight_at(step),
            });
        } else {
            plan.transitions.push(Transition::Promoting(target.clone()));
        }
        // Re-judge the next step against the same observation: its canary is not sized yet.
        if step < steps.len() {
            plan.requeue_after = None;
            break;
        }
    }
    let first_pass = input
        .rollout
        .is_none_or(|r| r.target != *target || r.strategy != StrategyType::Canary);
    if first_pass && !steps.is_empty() {
        plan.transitions.push(Transition::CanaryStep {
            step: 1,
            steps: steps.len(),
            weight: weight_at(0),
        });
    }

    if step < steps.len() {
        let (stable_replicas, canary_replicas) =
            canary_split(full, stable_state.replicas, weight_at(step));
        plan.workloads.push(Workload {
            track: Track::Stable,
            revision: stable.clone(),
            replicas: stable_replicas,
        });
        plan.workloads.push(Workload {
            track: Track::Canary,
            revision: target.clone(),
            replicas: Replicas::Fixed(canary_replicas),
        });
    } else {
        // Promotion: the stable Deployment rolls to the new version while the canary keeps
        // serving; the canary goes once the stable one is available.
        if stable_state.is_complete(target) {
            plan.workloads.push(Workload {
                track: Track::Stable,
                revision: target.clone(),
                replicas: full,
            });
            complete(plan, target);
            return;
        }
        if let Some(why) = overdue(&stable_state, target, &step_started, input.now, deadline) {
            plan.workloads.push(Workload {
                track: Track::Stable,
                revision: stable.clone(),
                replicas: full,
            });
            roll_back(plan, input, stable, target, format!("promotion: {why}"));
            return;
        }
        let (_, last_canary) = canary_split(full, stable_state.replicas, weight_at(step));
        plan.workloads.push(Workload {
            track: Track::Stable,
            revision: target.clone(),
            replicas: full,
        });
        plan.workloads.push(Workload {
            track: Track::Canary,
            revision: target.clone(),
            replicas: Replicas::Fixed(last_canary),
        });
        plan.requeue_after = remaining(&step_started, input.now, deadline);
    }
    rollout.step = Some(i32::try_from(step).unwrap_or(i32::MAX));
    rollout.step_started_at = Some(step_started);
    plan.rollout = Some(rollout);
}

/// Deployments of a former strategy that keep serving until the new primary is available.
fn retiring(
    input: &RolloutInput<'_>,
    plan: &RolloutPlan,
    primary: &DeploymentState,
) -> Vec<String> {
    let wanted: Vec<String> = plan
        .workloads
        .iter()
        .map(|w| w.track.deployment_name(input.name))
        .collect();
    let serving = plan.stable.as_ref().is_some_and(|s| primary.is_complete(s));
    if serving {
        return Vec::new();
    }
    [
        Track::Stable,
        Track::Color(Color::Blue),
        Track::Color(Color::Green),
    ]
    .iter()
    .map(|t| t.deployment_name(input.name))
    .filter(|n| !wanted.contains(n))
    .filter(|n| {
        input
            .deployments
            .get(n)
            .is_some_and(|d| d.available_replicas > 0)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CanaryStep, DeploymentStrategy, Pause};
    use crate::resources::tests::spec;

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
        s.deployment_strategy = Some(DeploymentStrategy {
            type_: strategy,
            canary_steps: vec![
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
            progress_deadline_seconds: Some(120),
        });
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
    }

    impl World {
        fn serving(strategy: StrategyType, version: &str) -> Self {
            let spec = spec_with(strategy, version);
            let primary = match strategy {
                StrategyType::BlueGreen => Track::Color(Color::Blue),
                _ => Track::Stable,
            };
            Self {
                deployments: BTreeMap::from([(
                    primary.deployment_name(NAME),
                    ready(&rev(version), 4),
                )]),
                status: PaymentServiceStatus {
                    current_version: Some(version.into()),
                    current_image: Some(format!("pay:{version}")),
                    active_color: (strategy == StrategyType::BlueGreen).then_some(Color::Blue),
                    ..Default::default()
                },
                spec,
                generation: 1,
            }
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
}
