//! The two ConfigMaps of the contract with the orchestrator (docs/saga-orchestrator.md):
//!
//! - `<name>-sagas`, written by the operator: `index.json` (per saga the current version and
//!   every version held, and `draining` while the resource is deleted) and one
//!   `<saga>.<version>.json` per version held.
//! - `<name>-inflight`, written by the orchestrator: `<saga>.<version>` → instances running.
//!   The operator creates it (labels only) and never writes its data.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;

use super::{in_flight_name, meta, sagas_name};
use crate::crd::SagaOrchestrator;
use crate::definitions::DefinitionPlan;

pub fn desired_sagas(
    so: &SagaOrchestrator,
    plan: &DefinitionPlan,
    defaults: &WorkloadDefaults,
) -> ConfigMap {
    let mut data = BTreeMap::from([(
        "index.json".to_string(),
        serde_json::to_string_pretty(&plan.index).unwrap_or_default(),
    )]);
    for v in &plan.versions {
        data.insert(v.key(), v.document.clone());
    }
    ConfigMap {
        metadata: meta(sagas_name(&so.name_any()), so, defaults),
        data: Some(data),
        ..ConfigMap::default()
    }
}

pub fn desired_in_flight(so: &SagaOrchestrator, defaults: &WorkloadDefaults) -> ConfigMap {
    ConfigMap {
        metadata: meta(in_flight_name(&so.name_any()), so, defaults),
        ..ConfigMap::default()
    }
}
