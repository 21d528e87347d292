//! The builders on the sample, and properties that hold for any adapter.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::crd::tests_support::sample;
use crate::crd::{BankingPartner, ClearingAdapter};

fn inputs(weights: &[(&str, i32)]) -> Inputs {
    Inputs {
        weights: weights.iter().map(|(p, w)| (p.to_string(), *w)).collect(),
        secret_versions: BTreeMap::from([("acme-bank-ca".to_string(), "1".to_string())]),
        draining: false,
    }
}

fn build(ca: &ClearingAdapter, inputs: &Inputs) -> DesiredChildren {
    desired_children(
        ca,
        inputs,
        &WorkloadDefaults::default(),
        "registry.example/adapter:1",
    )
}

fn hash(d: &DesiredChildren) -> Value {
    serde_json::to_value(&d.workload.deployment).unwrap_or_default()["spec"]["template"]["metadata"]
        ["annotations"][operator_core::builder::CONFIG_HASH_ANNOTATION]
        .clone()
}

#[test]
fn weights_are_outside_the_config_hash_and_secret_versions_inside() {
    let ca = sample();
    let base = build(&ca, &inputs(&[("acme-bank", 70), ("globex-clearing", 30)]));
    let drained = build(&ca, &inputs(&[("acme-bank", 70), ("globex-clearing", 0)]));
    assert_eq!(hash(&base), hash(&drained));
    assert_ne!(base.config_map, drained.config_map);
    let mut rotated = inputs(&[("acme-bank", 70), ("globex-clearing", 30)]);
    rotated
        .secret_versions
        .insert("acme-bank-ca".into(), "2".into());
    assert_ne!(hash(&base), hash(&build(&ca, &rotated)));
}

#[test]
fn draining_scales_to_zero_without_autoscaler_or_budget_and_keeps_the_template() {
    let ca = sample();
    let mut draining = inputs(&[]);
    let serving = build(&ca, &draining);
    draining.draining = true;
    let drained = build(&ca, &draining);
    let replicas =
        |d: &DesiredChildren| d.workload.deployment.spec.as_ref().and_then(|s| s.replicas);
    assert_eq!(replicas(&serving), None, "the sample is autoscaled");
    assert_eq!(replicas(&drained), Some(0));
    assert!(drained.workload.hpa.is_none() && drained.workload.pdb.is_none());
    assert_eq!(
        serving.workload.deployment.spec.map(|s| s.template),
        drained.workload.deployment.spec.map(|s| s.template)
    );
}

#[test]
fn one_pod_gets_no_budget_no_spread_and_a_separate_metrics_port_gets_its_own() {
    let mut ca = sample();
    ca.spec.autoscaling = None;
    ca.spec.replicas = 1;
    ca.spec.monitoring.metrics_port = 9090;
    let d = build(&ca, &inputs(&[]));
    assert!(d.workload.pdb.is_none());
    let pod = serde_json::to_value(&d.workload.deployment).unwrap_or_default()["spec"]["template"]
        ["spec"]
        .clone();
    assert!(pod["affinity"].is_null() && pod["topologySpreadConstraints"].is_null());
    assert_eq!(
        pod["containers"][0]["ports"][1],
        json!({"name": "metrics", "containerPort": 9090, "protocol": "TCP"})
    );
    let svc = serde_json::to_value(&d.workload.service).unwrap_or_default();
    assert_eq!(svc["spec"]["ports"][1]["name"], "metrics");
    let monitor = serde_json::to_value(d.workload.service_monitor).unwrap_or_default();
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
}

#[test]
fn endpoint_ports_default_to_443() {
    assert_eq!(network_policy::endpoint_port("https://bank.example"), 443);
    assert_eq!(
        network_policy::endpoint_port("https://bank.example:8443/v2"),
        8443
    );
    assert_eq!(network_policy::endpoint_port("https://[::1]:9443"), 9443);
}

fn partner() -> impl Strategy<Value = BankingPartner> {
    (
        "[a-z][a-z0-9]{0,10}",
        prop_oneof![Just(None), (1024u16..65535).prop_map(Some)],
        0i32..1000,
    )
        .prop_map(|(name, port, weight)| BankingPartner {
            endpoint: match port {
                Some(p) => format!("https://{name}.example:{p}/api"),
                None => format!("https://{name}.example"),
            },
            name,
            weight,
            headers: BTreeMap::new(),
            health_check_path: "/health".into(),
            tls: None,
            auth: None,
        })
}

proptest! {
    /// For any partners, weights and size: the routing table holds exactly the weights given,
    /// the pods carry the selector, only the partners' ports (and DNS) leave, and the config
    /// hash ignores the weights.
    #[test]
    fn any_adapter_builds_consistent_children(
        partners in proptest::collection::vec(partner(), 1..6),
        replicas in 1i32..10,
        drained in proptest::collection::vec(any::<bool>(), 6),
    ) {
        let mut ca = sample();
        ca.spec.replicas = replicas;
        ca.spec.autoscaling = None;
        ca.spec.config.banking_partners = partners.clone();
        ca.spec.config.encryption = None;
        let weights: BTreeMap<String, i32> = partners
            .iter()
            .zip(&drained)
            .map(|(p, d)| (p.name.clone(), if *d { 0 } else { p.weight }))
            .collect();
        let given = Inputs { weights: weights.clone(), ..Inputs::default() };
        let d = build(&ca, &given);
        let table: Value = serde_json::from_str(
            d.config_map.data.as_ref().and_then(|m| m.get("weights.json")).map_or("", String::as_str),
        ).unwrap_or_default();
        prop_assert_eq!(table, json!(weights));
        let spec = d.workload.deployment.spec.clone().unwrap_or_default();
        prop_assert_eq!(spec.replicas, Some(replicas));
        let pod_labels = spec.template.metadata.and_then(|m| m.labels).unwrap_or_default();
        for (k, v) in selector(&ca) {
            prop_assert_eq!(pod_labels.get(&k), Some(&v));
        }
        prop_assert_eq!(d.workload.pdb.is_some(), replicas > 1);
        let policy = serde_json::to_value(&d.workload.network_policy).unwrap_or_default();
        let mut ports: Vec<i64> = policy["spec"]["egress"][0]["ports"]
            .as_array().into_iter().flatten().filter_map(|p| p["port"].as_i64()).collect();
        ports.sort_unstable();
        let mut expected: Vec<i64> = partners.iter().map(|p| i64::from(network_policy::endpoint_port(&p.endpoint))).collect();
        expected.sort_unstable();
        expected.dedup();
        prop_assert_eq!(ports, expected);
        let all_equal = Inputs { weights: BTreeMap::new(), ..Inputs::default() };
        prop_assert_eq!(hash(&d), hash(&build(&ca, &all_equal)));
    }
}
