//! The orchestrator metrics the alerts read, per orchestrator (labelled by namespace and
//! name, by design: per-resource gauges removed with the resource):
//! `saga_orchestrator_definitions_valid`, `saga_orchestrator_dependencies_ready`,
//! `saga_orchestrator_instances_in_flight` (all versions) and
//! `saga_orchestrator_definition_versions{state}` (current, draining, kept).

use operator_core::metrics::{Metrics, ResourceGauge};

use crate::crd::{SagaOrchestrator, SagaOrchestratorStatus};
use crate::definitions::InFlight;
use operator_core::dashboard::PanelKind::{Table, TimeSeries};
use operator_core::dashboard::{Row, panel, per_resource};

/// Each orchestrator's definitions, the services its steps call, and its sagas in flight.
pub const DASHBOARD: &[Row] = &[Row {
    title: "Sagas",
    panels: &[
        panel(
            "Definitions valid and dependencies ready",
            Table,
            "short",
            &[
                per_resource("saga_orchestrator_definitions_valid", "definitions valid"),
                per_resource("saga_orchestrator_dependencies_ready", "dependencies ready"),
            ],
        ),
        panel(
            "Sagas in flight",
            TimeSeries,
            "short",
            &[per_resource("saga_orchestrator_instances_in_flight", "")],
        ),
        panel(
            "Definition versions by state",
            TimeSeries,
            "short",
            &[per_resource(
                "saga_orchestrator_definition_versions",
                "{{state}}",
            )],
        ),
    ],
}];

#[derive(Clone, Debug)]
pub struct SagaMetrics {
    valid: ResourceGauge<SagaOrchestrator>,
    dependencies: ResourceGauge<SagaOrchestrator>,
    in_flight: ResourceGauge<SagaOrchestrator>,
    versions: ResourceGauge<SagaOrchestrator>,
}

impl SagaMetrics {
    /// Creates the metrics in the runtime's registry; an orchestrator's series go with it.
    pub fn register(metrics: &Metrics) -> Self {
        Self {
            valid: metrics.resource_gauge(
                "saga_orchestrator_definitions_valid",
                "1 when the spec's saga definitions are valid and in force, 0 when the last valid ones run instead",
            ),
            dependencies: metrics.resource_gauge(
                "saga_orchestrator_dependencies_ready",
                "1 when every PaymentService a step calls (and the CloudNativePG cluster) is ready",
            ),
            in_flight: metrics.resource_gauge(
                "saga_orchestrator_instances_in_flight",
                "Saga instances running, all versions, as the orchestrator reports them",
            ),
            versions: metrics.resource_gauge_by(
                "saga_orchestrator_definition_versions",
                "Definition versions held, by state (current, draining: older with instances running, kept: older within the history limit)",
                "state",
            ),
        }
    }

    pub fn observe(
        &self,
        so: &SagaOrchestrator,
        status: &SagaOrchestratorStatus,
        in_flight: &InFlight,
        dependencies_ready: bool,
    ) {
        let valid = operator_core::conditions::is_true(&status.conditions, "DefinitionsValid");
        self.valid.of(so).set(i64::from(valid));
        self.dependencies.of(so).set(i64::from(dependencies_ready));
        self.in_flight.of(so).set(in_flight.values().sum());
        let draining = status.draining_versions.len() as i64;
        let current = status
            .definition_versions
            .iter()
            .filter(|v| v.current)
            .count() as i64;
        let kept = status.definition_versions.len() as i64 - current - draining;
        let states = [("current", current), ("draining", draining), ("kept", kept)];
        for (state, n) in states {
            self.versions.of_labelled(so, state).set(n);
        }
    }
}
