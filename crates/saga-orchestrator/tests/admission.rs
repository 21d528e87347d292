//! The SagaOrchestrator's admission webhooks over real HTTPS: every rule of the spec and of
//! the saga definitions (`validate.rs`) refused naming the saga, the step and the field;
//! the sample allowed; warnings; the spec's defaults patched in.

use anyhow::Result;
use operator_harness::admission::{AdmissionHarness, merged};
use saga_orchestrator::OPERATOR;
use serde_json::{Value, json};

async fn harness() -> Result<(AdmissionHarness, Value)> {
    AdmissionHarness::with_sample(OPERATOR.admission, "payment-saga", "SagaOrchestrator").await
}

/// A merge patch replacing the sample's one saga with `change` applied to it.
fn saga(sample: &Value, change: Value) -> Value {
    json!({"spec": {"sagas": [merged(&sample["spec"]["sagas"][0], change)]}})
}

/// A merge patch replacing the saga's step `j` with `change` applied to it.
fn step(sample: &Value, j: usize, change: Value) -> Value {
    let mut steps = sample["spec"]["sagas"][0]["steps"].clone();
    steps[j] = merged(&steps[j], change);
    saga(sample, json!({"steps": steps}))
}

#[tokio::test]
async fn every_rule_is_refused_at_admission_naming_the_saga_step_and_field() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let cases = include_str!("cases/refused.yaml");
    let allowed = webhook.refuses_each(&sample, cases, None).await?;
    assert!(allowed.warnings.is_empty(), "{:?}", allowed.warnings);
    let uncompensated = merged(&sample, step(&sample, 2, json!({"compensation": null})));
    let answer = webhook
        .validate("UPDATE", &uncompensated, Some(&sample))
        .await?;
    assert!(
        answer
            .message
            .contains("saga \"card-payment\" step \"post-to-ledger\" comes before the pivot"),
        "{}",
        answer.message
    );
    Ok(())
}

#[tokio::test]
async fn a_single_replica_is_admitted_with_a_warning() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let single = merged(
        &sample,
        json!({"spec": {"replicas": 1, "autoscaling": null}}),
    );
    webhook.one_warning(&single, "spec.replicas").await?;
    Ok(())
}

#[tokio::test]
async fn defaults_are_patched_in_and_nothing_written_is_changed() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let bare = merged(
        &sample,
        json!({"spec": {"definitionHistoryLimit": null, "drainTimeout": null}}),
    );
    let spec = webhook.defaulted(&bare).await?["spec"].clone();
    assert_eq!(spec["definitionHistoryLimit"], 3);
    assert!(spec["drainTimeout"].is_string(), "{spec}");
    assert_eq!(spec["sagas"][0]["steps"][0]["name"], "reserve-funds");
    assert_eq!(spec["persistence"], sample["spec"]["persistence"]);
    Ok(())
}
