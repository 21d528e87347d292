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
//! canary step) — a failing readiness probe, an image that does not pull — is rolled back to
//! the last version that was, and is not tried again until the spec changes. A rollout whose
//! pods crash-loop is rolled back as soon as that is seen, without waiting for the deadline.
//! What triggers a rollout is a new `version` or `image`; other changes (configuration,
//! resources, probes) roll the serving Deployment in place.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::crd::{
    Color, FailedRollout, PaymentService, PaymentServiceSpec, PaymentServiceStatus, Revision,
    Rollout, StrategyType,
};

pub mod analysis;
mod canary;
mod failure;
#[cfg(test)]
mod tests;

use canary::canary;
use failure::overdue;
pub use failure::{CRASH_CHECK_INTERVAL, FailureCause, Overdue};

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
    /// A pod of [`Self::revision`] crash-looping, in words; only looked for while a rollout
    /// is in progress.
    pub crash_loop: Option<String>,
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
        cause: FailureCause,
    },
    /// A canary analysis metric could not be judged: the step holds until it can.
    AnalysisInconclusive {
        metric: String,
        why: String,
    },
    /// The first version never became available: there is nothing to roll back to.
    FirstVersionFailed {
        failed: Revision,
        why: String,
        cause: FailureCause,
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
    /// The version the annotation [`PROMOTE_ANNOTATION`] names: a blue-green rollout with
    /// `autoPromote: false` switches only to it.
    pub promoted: Option<&'a str>,
    /// The version the annotation [`ABORT_ANNOTATION`] names: a rollout of it in progress is
    /// rolled back as a failure, whatever its strategy and step.
    pub aborted: Option<&'a str>,
    /// This pass's readings of the canary's analysis metrics (only those due).
    pub measurements: &'a [analysis::Measurement],
}

/// What a user sets to let a held blue-green rollout switch: the version to switch to.
pub const PROMOTE_ANNOTATION: &str = "payments.io/promote";

/// What a user sets to stop a rollout in progress and go back to the serving version: the
/// version to give up on. It is then not retried until the spec changes, as a failed one.
pub const ABORT_ANNOTATION: &str = "payments.io/abort";

impl<'a> RolloutInput<'a> {
    /// The inputs for `ps` as it stands: its name, spec, generation and recorded status.
    pub fn of(
        ps: &'a PaymentService,
        deployments: &'a BTreeMap<String, DeploymentState>,
        now: Timestamp,
    ) -> Self {
        let status = ps.status.as_ref();
        let annotation = |key| {
            ps.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .map(String::as_str)
        };
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
            promoted: annotation(PROMOTE_ANNOTATION),
            aborted: annotation(ABORT_ANNOTATION),
            measurements: &[],
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
    /// BlueGreen with `autoPromote: false`: the version that is available on the idle colour
    /// and waits for [`PROMOTE_ANNOTATION`] to name it.
    pub awaiting_promotion: Option<Revision>,
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
// Over 120 lines on purpose: the rollout's transitions for every strategy in decision order;
// each strategy's own steps are in its module (`canary`).
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
        awaiting_promotion: None,
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
            analysis: None,
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
                    Some(Overdue { cause, why }) => {
                        plan.failed = Some(failure(&target, input, &why));
                        plan.transitions.push(Transition::FirstVersionFailed {
                            failed: target,
                            why,
                            cause,
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
        Some(stable) if input.aborted == Some(target.version.as_str()) => {
            plan.workloads.push(serve(&stable));
            let why = format!("aborted with {ABORT_ANNOTATION}={}", target.version);
            let cause = FailureCause::Aborted;
            roll_back(&mut plan, input, &stable, &target, Overdue { cause, why });
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
    Overdue { cause, why }: Overdue,
) {
    plan.failed = Some(failure(target, input, &why));
    plan.rollout = None;
    plan.transitions.push(Transition::RolledBack {
        failed: target.clone(),
        to: stable.clone(),
        why,
        cause,
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
    let hold = input
        .spec
        .blue_green()
        .is_some_and(|b| b.auto_promote == Some(false))
        && input.promoted != Some(target.version.as_str());
    if idle_state.is_complete(target) && hold {
        // Available, and held for a person: no deadline runs while it waits.
        plan.workloads.push(Workload {
            track: active,
            revision: stable.clone(),
            replicas: full,
        });
        plan.workloads.push(Workload {
            track: idle,
            revision: target.clone(),
            replicas: preview_replicas,
        });
        plan.awaiting_promotion = Some(target.clone());
        plan.rollout = Some(rollout);
        return;
    }
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
