//! The builders on the sample, and properties that hold for any orchestrator.

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::crd::tests_support::sample;
use crate::definitions::{self, Held, InFlight};

fn plan_of(so: &SagaOrchestrator) -> DefinitionPlan {
    let current = so
        .spec
        .sagas
        .iter()
        .map(|s| definitions::render("payments", s))
        .collect();
    definitions::plan(Some(current), &Held::default(), &InFlight::new(), 3, false)
}

fn build(so: &SagaOrchestrator) -> DesiredChildren {
    desired_children(so, &plan_of(so), "7", &WorkloadDefaults::default())
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

#[test]
fn the_sample_gets_its_definitions_identity_and_persistence_by_reference() {
    let so = sample();
    let d = build(&so);
    let data = d.sagas.data.clone().unwrap_or_default();
    let index: Value = serde_json::from_str(&data["index.json"]).unwrap_or_default();
    let version = index["sagas"]["card-payment"]["current"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(data.contains_key(&format!("card-payment.{version}.json")));
    assert!(d.in_flight.data.is_none(), "the orchestrator writes it");
    let role = json(&d.role);
    assert_eq!(
        role["rules"][0]["resourceNames"][0],
        "payment-saga-inflight"
    );
    assert_eq!(
        role["rules"][0]["verbs"],
        serde_json::json!(["get", "patch"])
    );
    let pod = json(&d.workload.deployment)["spec"]["template"]["spec"].clone();
    assert_eq!(pod["serviceAccountName"], "payment-saga");
    let env = pod["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let var = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(var("PERSISTENCE_HOST")["value"], "saga-db-rw");
    assert_eq!(
        var("PERSISTENCE_PASSWORD")["valueFrom"]["secretKeyRef"]["name"],
        "saga-db-app"
    );
    assert!(
        var("PERSISTENCE_PASSWORD")["value"].is_null(),
        "by reference only"
    );
    assert_eq!(
        json(&d.workload.deployment)["spec"]["replicas"],
        Value::Null,
        "the autoscaler's"
    );
    assert!(
        d.workload.pdb.is_some()
            && d.workload.hpa.is_some()
            && d.workload.service_monitor.is_some()
    );
}

proptest! {
    /// For any sizes and definition versions: the pods carry the selector, the config hash
    /// follows the current definitions and the Secret's version and nothing else, and the
    /// budget exists exactly when more than one pod runs.
    #[test]
    fn any_orchestrator_builds_consistent_children(replicas in 1i32..10, timeout in 1u32..60, secret in 1u32..5) {
        let mut so = sample();
        so.spec.autoscaling = None;
        so.spec.replicas = replicas;
        so.spec.sagas[0].steps[0].timeout = format!("{timeout}s").into();
        let plan = plan_of(&so);
        let d = desired_children(&so, &plan, &secret.to_string(), &WorkloadDefaults::default());
        let spec = d.workload.deployment.spec.clone().unwrap_or_default();
        prop_assert_eq!(spec.replicas, Some(replicas));
        let pod_labels = spec.template.metadata.clone().and_then(|m| m.labels).unwrap_or_default();
        for (k, v) in selector(&so) {
            prop_assert_eq!(pod_labels.get(&k), Some(&v));
        }
        prop_assert_eq!(d.workload.pdb.is_some(), replicas > 1);
        let hash = |d: &DesiredChildren| json(&d.workload.deployment)["spec"]["template"]["metadata"]["annotations"][builder::CONFIG_HASH_ANNOTATION].clone();
        let same = desired_children(&so, &plan, &secret.to_string(), &WorkloadDefaults::default());
        prop_assert_eq!(hash(&d), hash(&same));
        let rotated = desired_children(&so, &plan, &(secret + 10).to_string(), &WorkloadDefaults::default());
        prop_assert_ne!(hash(&d), hash(&rotated));
        let mut changed = so.clone();
        changed.spec.sagas[0].steps[0].timeout = format!("{}s", timeout + 100).into();
        let other = desired_children(&changed, &plan_of(&changed), &secret.to_string(), &WorkloadDefaults::default());
        prop_assert_ne!(hash(&d), hash(&other));
    }
}
