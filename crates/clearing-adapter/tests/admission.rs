//! The ClearingAdapter's admission webhooks over real HTTPS: every rule of `validate.rs`
//! refused naming its field, seed 001's `ValidateUpdate` (no scale-down under high load,
//! by spec edit or `kubectl scale`) against the load a running adapter reports, warnings,
//! and seed 001's `Default` patched in.

use crate::common::*;
use anyhow::Result;
use clearing_adapter::OPERATOR;
use operator_harness::admission::{AdmissionHarness, merged};
use serde_json::{Value, json};

async fn webhook(client: kube::Client) -> Result<AdmissionHarness> {
    AdmissionHarness::start(OPERATOR.admission, client).await
}

/// A merge patch that replaces the sample's partners with partner `i` changed by `change`.
fn partner(sample: &Value, i: usize, change: Value) -> Value {
    let mut partners = sample["spec"]["config"]["bankingPartners"].clone();
    partners[i] = merged(&partners[i], change);
    json!({"spec": {"config": {"bankingPartners": partners}}})
}

#[tokio::test]
async fn every_rule_is_refused_at_admission_naming_its_field() -> Result<()> {
    let webhook = webhook(testkit::ApiServer::new().client()).await?;
    let sample = sample()?;
    let allowed = webhook
        .refuses_each(&sample, include_str!("cases/refused.yaml"), Some("hunter2"))
        .await?;
    assert!(allowed.warnings.is_empty(), "{:?}", allowed.warnings);
    Ok(())
}

#[tokio::test]
async fn a_scale_down_under_high_load_is_refused_at_the_door_by_edit_and_by_scale() -> Result<()> {
    let h = start_with(ScriptedProbe::default(), sample()?).await?;
    let webhook = webhook(h.client()).await?;
    let stored = serde_json::to_value(h.adapters().get(SAMPLE).await?)?;
    let down = merged(&stored, json!({"spec": {"replicas": 2}}));

    h.workloads.set_cpu_utilization(NS, SAMPLE, Some(95));
    let refused = webhook.validate("UPDATE", &down, Some(&stored)).await?;
    assert!(!refused.allowed);
    assert_eq!(refused.fields, ["spec.replicas"]);
    assert!(
        refused.message.contains("cannot scale down from 3 to 2")
            && refused.message.contains("95%"),
        "{}",
        refused.message
    );
    let scaled = webhook.scale(&stored, 3, 2).await?;
    assert!(!scaled.allowed, "kubectl scale is held to the same rule");
    assert!(
        scaled.message.contains("cannot scale down from 3 to 2"),
        "{}",
        scaled.message
    );
    let up = webhook.scale(&stored, 3, 5).await?;
    assert!(up.allowed, "scaling up under load is fine: {}", up.message);

    h.workloads.set_cpu_utilization(NS, SAMPLE, Some(40));
    let allowed = webhook.validate("UPDATE", &down, Some(&stored)).await?;
    assert!(
        allowed.allowed,
        "once the load dropped: {}",
        allowed.message
    );
    assert!(webhook.scale(&stored, 3, 2).await?.allowed);
    Ok(())
}

#[tokio::test]
async fn one_partner_carrying_all_traffic_is_admitted_with_a_warning() -> Result<()> {
    let webhook = webhook(testkit::ApiServer::new().client()).await?;
    let sample = sample()?;
    let single = merged(&sample, partner(&sample, 1, json!({"weight": 0})));
    webhook
        .one_warning(&single, "spec.config.bankingPartners")
        .await?;
    Ok(())
}

#[tokio::test]
async fn seed_defaults_are_patched_in() -> Result<()> {
    let webhook = webhook(testkit::ApiServer::new().client()).await?;
    let sample = sample()?;
    let bare = merged(
        &sample,
        json!({"spec": {"replicas": null, "circuitBreaker": null, "monitoring": null,
            "config": {"timeout": null}}}),
    );
    let spec = webhook.defaulted(&bare).await?["spec"].clone();
    // Seed 001's Default().
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["config"]["timeout"], "30s");
    assert_eq!(
        spec["circuitBreaker"],
        json!({"failureThreshold": 5, "successThreshold": 3, "timeout": "60s"})
    );
    assert_eq!(
        spec["monitoring"],
        json!({"enabled": true, "metricsPort": 8080, "healthCheckPath": "/health"})
    );
    assert_eq!(
        spec["config"]["bankingPartners"],
        sample["spec"]["config"]["bankingPartners"]
    );
    Ok(())
}
