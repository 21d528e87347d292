//! The SagaOrchestrator's admission webhooks over real HTTPS: every rule of the spec and of
//! the saga definitions (`validate.rs`) refused naming the saga, the step and the field;
//! the sample allowed; warnings; the spec's defaults patched in.

use anyhow::Result;
use operator_harness::admission::{AdmissionHarness, merged};
use saga_orchestrator::OPERATOR;
use serde_json::{Value, json};

operator_harness::admission_tests!(OPERATOR);

async fn harness() -> Result<(AdmissionHarness, Value)> {
    AdmissionHarness::with_sample(&OPERATOR, "payment-saga", "SagaOrchestrator").await
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
async fn a_step_before_the_pivot_without_compensation_is_refused_naming_the_saga_and_step()
-> Result<()> {
    let (webhook, sample) = harness().await?;
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
