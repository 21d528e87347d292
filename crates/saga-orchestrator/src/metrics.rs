//! The orchestrator metrics the alerts read, per orchestrator (labelled by namespace and
//! name, by design: per-resource gauges removed with the resource):
//! `saga_orchestrator_definitions_valid`, `saga_orchestrator_dependencies_ready`,
//! `saga_orchestrator_instances_in_flight` (all versions) and
//! `saga_orchestrator_definition_versions{state}` (current, draining, kept).

use kube::ResourceExt;
use operator_core::metrics::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::crd::{SagaOrchestrator, SagaOrchestratorStatus};
use crate::definitions::InFlight;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrchestratorLabels {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    namespace: String,
    name: String,
    state: &'static str,
}

const STATES: [&str; 3] = ["current", "draining", "kept"];

#[derive(Clone, Debug, Default)]
pub struct SagaMetrics {
    valid: Family<OrchestratorLabels, Gauge>,
    dependencies: Family<OrchestratorLabels, Gauge>,
    in_flight: Family<OrchestratorLabels, Gauge>,
    versions: Family<VersionLabels, Gauge>,
}

impl SagaMetrics {
    /// Creates the metrics in the runtime's registry; an orchestrator's series go with it.
    pub fn register(metrics: &Metrics) -> Self {
        let m = Self::default();
        metrics.register(
            "saga_orchestrator_definitions_valid",
            "1 when the spec's saga definitions are valid and in force, 0 when the last valid ones run instead",
            m.valid.clone(),
        );
        metrics.register(
            "saga_orchestrator_dependencies_ready",
            "1 when every PaymentService a step calls (and the CloudNativePG cluster) is ready",
            m.dependencies.clone(),
        );
        metrics.register(
            "saga_orchestrator_instances_in_flight",
            "Saga instances running, all versions, as the orchestrator reports them",
            m.in_flight.clone(),
        );
        metrics.register(
            "saga_orchestrator_definition_versions",
            "Definition versions held, by state (current, draining: older with instances running, kept: older within the history limit)",
            m.versions.clone(),
        );
        let gone = m.clone();
        metrics.on_resource_gone(crate::CONTROLLER, move |ns, name| gone.forget(ns, name));
        m
    }

    pub fn observe(
        &self,
        so: &SagaOrchestrator,
        status: &SagaOrchestratorStatus,
        in_flight: &InFlight,
        dependencies_ready: bool,
    ) {
        let (namespace, name) = (so.namespace().unwrap_or_default(), so.name_any());
        let labels = OrchestratorLabels {
            namespace: namespace.clone(),
            name: name.clone(),
        };
        let valid = operator_core::conditions::is_true(&status.conditions, "DefinitionsValid");
        self.valid.get_or_create(&labels).set(i64::from(valid));
        self.dependencies
            .get_or_create(&labels)
            .set(i64::from(dependencies_ready));
        self.in_flight
            .get_or_create(&labels)
            .set(in_flight.values().sum());
        let draining = status.draining_versions.len() as i64;
        let current = status
            .definition_versions
            .iter()
            .filter(|v| v.current)
            .count() as i64;
        let kept = status.definition_versions.len() as i64 - current - draining;
        for (state, n) in STATES.into_iter().zip([current, draining, kept]) {
            self.versions
                .get_or_create(&VersionLabels {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    state,
                })
                .set(n);
        }
    }

    pub fn forget(&self, namespace: &str, name: &str) {
        let labels = OrchestratorLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.valid.remove(&labels);
        self.dependencies.remove(&labels);
        self.in_flight.remove(&labels);
        for state in STATES {
            self.versions.remove(&VersionLabels {
                namespace: namespace.into(),
                name: name.into(),
                state,
            });
        }
    }
}
