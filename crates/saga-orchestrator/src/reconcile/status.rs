//! The status a pass reports: phase and pods, the definitions in force (and which older
//! versions still drain), and the Ready, DefinitionsValid and DependenciesReady conditions,
//! each saying what is true and what to do.

use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use operator_core::conditions::{ConditionStatus, Observed as Condition, set_condition};
use operator_core::{FieldError, RefusedChild};

use super::observe::Observed;
use crate::crd::{DefinitionVersion, Phase, SagaOrchestrator, SagaOrchestratorStatus};
use crate::definitions::DefinitionPlan;
use crate::dependencies::Dependencies;
use crate::resources::floor;
use operator_core::OptionalChild;

pub const DEFINITIONS_VALID: &str = "DefinitionsValid";

/// The refused definitions in words: each problem with its saga and step.
pub fn invalid_message(invalid: &[FieldError]) -> String {
    let problems: Vec<String> = invalid.iter().map(ToString::to_string).collect();
    format!(
        "invalid saga definitions, not given to the orchestrator: {}; the last valid definitions stay in force",
        problems.join("; ")
    )
}

/// The definitions are valid but their ConfigMap is someone else's: the orchestrator does not
/// run them, and DefinitionsValid says so instead of "in force".
pub fn definitions_not_in_force(
    status: &mut SagaOrchestratorStatus,
    refused: &RefusedChild,
    generation: Option<i64>,
    now: Timestamp,
) {
    let condition = Condition {
        type_: DEFINITIONS_VALID,
        status: ConditionStatus::False,
        reason: operator_core::reason!("NotInForce"),
        message: format!("the saga definitions are not in force: {}", refused.message),
    };
    set_condition(&mut status.conditions, condition, generation, now);
}

/// Every version held, with what runs on it.
pub fn versions(plan: &DefinitionPlan, observed: &Observed) -> Vec<DefinitionVersion> {
    let active = plan.active();
    plan.versions
        .iter()
        .map(|v| DefinitionVersion {
            saga: v.saga.clone(),
            version: v.version.clone(),
            current: active.get(&v.saga) == Some(&v.version),
            in_flight: observed
                .in_flight
                .get(&(v.saga.clone(), v.version.clone()))
                .copied()
                .unwrap_or(0),
        })
        .collect()
}

pub fn observed_status(
    so: &SagaOrchestrator,
    plan: &DefinitionPlan,
    observed: &Observed,
    invalid: &[FieldError],
    dependencies: &Dependencies,
    monitor: OptionalChild,
    now: Timestamp,
) -> SagaOrchestratorStatus {
    let generation = so.meta().generation;
    let mut status = so.status.clone().unwrap_or_default();
    let active = plan.active();
    status.replicas = observed.replicas;
    status.ready_replicas = observed.ready_replicas;
    status.sagas = active.len() as i32;
    status.active_definitions = active;
    status.definition_versions = versions(plan, observed);
    status.draining_versions = plan.draining(&observed.in_flight);
    status.observed_generation = generation;
    status.phase = Some(if observed.ready_replicas == 0 {
        Phase::Pending
    } else {
        Phase::Running
    });

    let wanted = floor(so).max(1);
    let mut ready = if !invalid.is_empty() {
        Condition {
            type_: "Ready",
            status: ConditionStatus::False,
            reason: operator_core::reason!("DefinitionsInvalid"),
            message: "the spec's saga definitions are invalid (see DefinitionsValid); the orchestrator runs the last valid ones".into(),
        }
    } else if observed.ready_replicas >= wanted {
        Condition {
            type_: "Ready",
            status: ConditionStatus::True,
            reason: operator_core::reason!("PodsReady"),
            message: format!(
                "{} of {wanted} orchestrator pods ready, running {} saga(s)",
                observed.ready_replicas, status.sagas
            ),
        }
    } else {
        Condition {
            type_: "Ready",
            status: ConditionStatus::False,
            reason: operator_core::reason!("PodsNotReady"),
            message: format!(
                "{} of {wanted} orchestrator pods ready; the rollout is in progress",
                observed.ready_replicas
            ),
        }
    };
    if ready.status == ConditionStatus::True && monitor == OptionalChild::Unavailable {
        ready
            .message
            .push_str("; no ServiceMonitor: the Prometheus Operator's CRD is not installed");
    }
    set_condition(&mut status.conditions, ready, generation, now);

    let valid = if invalid.is_empty() {
        let mut message = format!("{} saga definition(s) valid and in force", status.sagas);
        if !status.draining_versions.is_empty() {
            message.push_str(&format!(
                "; older versions with instances still running: {}",
                status.draining_versions.join(", ")
            ));
        }
        if !observed.unreadable.is_empty() {
            message.push_str(&format!(
                "; unreadable in-flight entries (expected <saga>.<version>: count): {}",
                observed.unreadable.join(", ")
            ));
        }
        Condition {
            type_: DEFINITIONS_VALID,
            status: ConditionStatus::True,
            reason: operator_core::reason!("Valid"),
            message,
        }
    } else {
        Condition {
            type_: DEFINITIONS_VALID,
            status: ConditionStatus::False,
            reason: operator_core::reason!("InvalidDefinitions"),
            message: invalid_message(invalid),
        }
    };
    set_condition(&mut status.conditions, valid, generation, now);

    let deps = if dependencies.ready() {
        let mut message = "every PaymentService a step calls exists and is Ready".to_string();
        match &dependencies.persistence {
            Some(Ok(())) => message.push_str(&format!(
                "; CloudNativePG Cluster {} is ready",
                so.spec.persistence.cluster_name
            )),
            _ => message.push_str("; the persistence cluster is not checked (not a CloudNativePG postgresql cluster, or CloudNativePG is not installed)"),
        }
        Condition {
            type_: "DependenciesReady",
            status: ConditionStatus::True,
            reason: operator_core::reason!("DependenciesReady"),
            message,
        }
    } else {
        Condition {
            type_: "DependenciesReady",
            status: ConditionStatus::False,
            reason: operator_core::reason!("DependenciesNotReady"),
            message: format!(
                "{}; the orchestrator is deployed, but sagas calling them fail or compensate until they are",
                dependencies.problems().join("; ")
            ),
        }
    };
    set_condition(&mut status.conditions, deps, generation, now);
    status
}
