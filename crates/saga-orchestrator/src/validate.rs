//! The admission rules for a `SagaOrchestrator`. [`validate`] covers what refuses the whole
//! spec (names, persistence, sizes); [`validate_definitions`] the saga definitions, whose
//! errors name the saga and the step and hold back only the definitions: the orchestrator
//! keeps the last valid ones. The reconcile runs both before touching anything.

use std::collections::BTreeSet;
use std::time::Duration;

use operator_core::FieldError;
use operator_core::duration::GoDuration;
use operator_core::validation::{self, FieldErrors, SpecRules};

use crate::crd::{SagaDefinition, SagaOrchestratorSpec};

/// The longest suffix a child adds to the orchestrator's name (`<name>-inflight`).
pub const LONGEST_SUFFIX: &str = "-inflight";

impl SpecRules for SagaOrchestratorSpec {
    /// Problems that refuse the whole spec.
    fn errors(&self, name: &str) -> Vec<FieldError> {
        let mut errors = FieldErrors::for_resource(name, LONGEST_SUFFIX);
        errors.container(&self.image, self.resources.as_ref());
        errors.push(
            "spec.version",
            validation::label_value(&self.version, false),
        );
        errors.in_range("spec.replicas", self.replicas, 1..=50);
        if let Some(a) = &self.autoscaling {
            errors.check(
                1 <= a.min_replicas && a.min_replicas <= a.max_replicas && a.max_replicas <= 50,
                "spec.autoscaling",
                format!(
                    "needs 1 <= minReplicas <= maxReplicas <= 50, got {} and {}",
                    a.min_replicas, a.max_replicas
                ),
            );
        }
        errors.check(
            self.monitoring.prometheus.port != 8080,
            "spec.monitoring.prometheus.port",
            "port 8080 serves the orchestrator's API; choose another metrics port",
        );
        let persistence = &self.persistence;
        errors.push(
            "spec.persistence.clusterName",
            validation::resource_name(&persistence.cluster_name, "-rw"),
        );
        errors.push(
            "spec.persistence.secretName",
            validation::dns_subdomain(&persistence.secret_name),
        );
        errors.check(
            (1..=20).contains(&self.definition_history_limit),
            "spec.definitionHistoryLimit",
            format!(
                "must be between 1 and 20, got {}",
                self.definition_history_limit
            ),
        );
        errors.push(
            "spec.drainTimeout",
            validation::drain_timeout(&self.drain_timeout),
        );
        errors.into_vec()
    }

    /// Valid but risky: what the webhook answers with a warning that `kubectl` shows.
    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.replicas == 1 && self.autoscaling.is_none() {
            warnings.push(
                "spec.replicas is 1: sagas in flight pause whenever the orchestrator restarts; use at least 2"
                    .to_string(),
            );
        }
        warnings
    }
}

/// Problems with the saga definitions, each naming the saga and the step.
pub fn validate_definitions(sagas: &[SagaDefinition]) -> Vec<FieldError> {
    let mut errors = FieldErrors::default();
    let mut names = BTreeSet::new();
    for (i, saga) in sagas.iter().enumerate() {
        let at = |f: &str| format!("spec.sagas[{i}].{f}");
        let saga_name = &saga.name;
        errors.check(
            names.insert(saga_name.as_str()),
            &at("name"),
            format!("saga {saga_name:?} is defined twice: saga names must be unique"),
        );
        errors.push(&at("name"), validation::resource_name(saga_name, ""));
        let saga_timeout = duration(&mut errors, &at("timeout"), &saga.timeout, saga_name, None);
        errors.check(
            !saga.steps.is_empty(),
            &at("steps"),
            format!("saga {saga_name:?} needs at least one step"),
        );
        let pivot = match &saga.pivot {
            Some(pivot) => {
                let found = saga.steps.iter().position(|s| &s.name == pivot);
                errors.check(
                    found.is_some(),
                    &at("pivot"),
                    format!("saga {saga_name:?}: pivot {pivot:?} is not one of its steps"),
                );
                found
            }
            None => None,
        };
        let mut steps = BTreeSet::new();
        for (j, step) in saga.steps.iter().enumerate() {
            let at = |f: &str| format!("spec.sagas[{i}].steps[{j}].{f}");
            let step_name = &step.name;
            let both = format!("saga {saga_name:?} step {step_name:?}");
            errors.check(
                steps.insert(step_name.as_str()),
                &at("name"),
                format!("{both} is defined twice: step names must be unique within a saga"),
            );
            errors.push(&at("service"), validation::resource_name(&step.service, ""));
            // Every step that can still be undone needs a way to undo it: all steps before the
            // pivot, or all steps when there is none.
            let compensable = match (&saga.pivot, pivot) {
                (Some(_), Some(p)) => j < p,
                (Some(_), None) => false,
                (None, _) => true,
            };
            errors.check(
                !compensable || step.compensation.is_some(),
                &at("compensation"),
                format!(
                    "{both} comes before the pivot, so it must have a compensation (what undoes it when a later step fails)"
                ),
            );
            let step_timeout = duration(
                &mut errors,
                &at("timeout"),
                &step.timeout,
                saga_name,
                Some(step_name),
            );
            if let (Some(step_timeout), Some(saga_timeout)) = (step_timeout, saga_timeout) {
                errors.check(
                    step_timeout <= saga_timeout,
                    &at("timeout"),
                    format!(
                        "{both}: timeout {} exceeds the saga's {}",
                        step.timeout, saga.timeout
                    ),
                );
            }
            errors.check(
                (1..=20).contains(&step.retry.max_attempts),
                &at("retry.maxAttempts"),
                format!(
                    "{both}: must be between 1 and 20, got {}",
                    step.retry.max_attempts
                ),
            );
            let backoff = duration(
                &mut errors,
                &at("retry.backoff"),
                &step.retry.backoff,
                saga_name,
                Some(step_name),
            );
            if let (Some(backoff), Some(step_timeout)) = (backoff, step_timeout) {
                errors.check(
                    backoff <= step_timeout,
                    &at("retry.backoff"),
                    format!(
                        "{both}: backoff {} exceeds the step's timeout {}",
                        step.retry.backoff, step.timeout
                    ),
                );
            }
        }
    }
    errors.into_vec()
}

fn duration(
    errors: &mut FieldErrors,
    field: &str,
    value: &GoDuration,
    saga: &str,
    step: Option<&String>,
) -> Option<Duration> {
    let whose = match step {
        Some(step) => format!("saga {saga:?} step {step:?}"),
        None => format!("saga {saga:?}"),
    };
    let read = validation::positive_duration(value).map_err(|e| format!("{whose}: {e}"));
    errors.push(field, read)
}

#[cfg(test)]
mod tests;
