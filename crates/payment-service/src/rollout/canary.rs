//! The canary strategy: `<name>-canary` beside the stable `<name>`, step by step.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use operator_core::duration::go_duration;

use crate::crd::{Revision, Rollout, StrategyType};

use super::analysis::{self, Verdict};
use super::{
    FailureCause, Overdue, Replicas, RolloutInput, RolloutPlan, Track, Transition, Workload,
    complete, elapsed, overdue, remaining, roll_back,
};

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

// Over 120 lines on purpose: the canary's state machine (start, step, analyse, pause,
// promote, roll back) reads as one sequence of steps; splitting it hides the order.
pub(super) fn canary(
    plan: &mut RolloutPlan,
    input: &RolloutInput<'_>,
    stable: &Revision,
    target: &Revision,
    mut rollout: Rollout,
    deadline: Duration,
    full: Replicas,
) {
    let steps = input.spec.canary_steps();
    // A step's canary is judged against the analysis' own deadline when it sets one.
    let step_deadline = Duration::from_secs(
        u64::try_from(input.spec.canary_step_deadline_seconds()).unwrap_or(600),
    );
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
            if let Some(failure) = overdue(
                &canary_state,
                target,
                &step_started,
                input.now,
                step_deadline,
            ) {
                plan.workloads.push(Workload {
                    track: Track::Stable,
                    revision: stable.clone(),
                    replicas: full,
                });
                let why = format!(
                    "canary step {} of {} ({}%): {}",
                    step + 1,
                    steps.len(),
                    weight_at(step),
                    failure.why
                );
                roll_back(plan, input, stable, target, Overdue { why, ..failure });
                return;
            }
            plan.requeue_after = remaining(&step_started, input.now, step_deadline);
            break;
        }
        // With analysis metrics, the step also needs each of them passed, and fails with any.
        let metrics = input.spec.analysis_metrics();
        if !metrics.is_empty() {
            let recorded = rollout.analysis.as_deref().unwrap_or_default();
            let judged = analysis::judge(metrics, recorded, input.measurements, input.now);
            plan.transitions.extend(judged.transitions);
            rollout.analysis = Some(judged.results);
            match judged.verdict {
                Verdict::Failed(why) => {
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
                    let cause = FailureCause::Analysis;
                    roll_back(plan, input, stable, target, Overdue { cause, why });
                    return;
                }
                Verdict::Pending(next) => {
                    plan.requeue_after = Some(next);
                    break;
                }
                Verdict::Passed => {}
            }
        }
        let pause = steps[step]
            .pause
            .as_ref()
            .and_then(|p| go_duration(&p.duration).ok())
            .unwrap_or_default();
        if elapsed(&step_started, input.now) < pause {
            plan.requeue_after = remaining(&step_started, input.now, pause);
            break;
        }
        step += 1;
        step_started = Time(input.now);
        rollout.analysis = None;
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
        if let Some(failure) = overdue(&stable_state, target, &step_started, input.now, deadline) {
            plan.workloads.push(Workload {
                track: Track::Stable,
                revision: stable.clone(),
                replicas: full,
            });
            let why = format!("promotion: {}", failure.why);
            roll_back(plan, input, stable, target, Overdue { why, ..failure });
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
