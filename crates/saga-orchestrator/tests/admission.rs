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

/// Each rule: a change to the sample that breaks it, and the field the refusal names.
fn broken(sample: &Value) -> Vec<(Value, &'static str)> {
    let first = sample["spec"]["sagas"][0].clone();
    vec![
        (
            json!({"metadata": {"name": "a".repeat(60)}}),
            "metadata.name",
        ),
        (json!({"spec": {"image": "bad image"}}), "spec.image"),
        (json!({"spec": {"version": "1.2 beta"}}), "spec.version"),
        (json!({"spec": {"replicas": 51}}), "spec.replicas"),
        (
            json!({"spec": {"autoscaling": {"minReplicas": 7}}}),
            "spec.autoscaling",
        ),
        (
            json!({"spec": {"monitoring": {"prometheus": {"port": 8080}}}}),
            "spec.monitoring.prometheus.port",
        ),
        (
            json!({"spec": {"persistence": {"clusterName": "Saga_DB"}}}),
            "spec.persistence.clusterName",
        ),
        (
            json!({"spec": {"persistence": {"secretName": "Saga_Secret"}}}),
            "spec.persistence.secretName",
        ),
        (
            json!({"spec": {"definitionHistoryLimit": 0}}),
            "spec.definitionHistoryLimit",
        ),
        (json!({"spec": {"drainTimeout": "0s"}}), "spec.drainTimeout"),
        (
            json!({"spec": {"drainTimeout": "later"}}),
            "spec.drainTimeout",
        ),
        (
            json!({"spec": {"sagas": [first.clone(), first]}}),
            "spec.sagas[1].name",
        ),
        (
            saga(sample, json!({"name": "Card Payment"})),
            "spec.sagas[0].name",
        ),
        (
            saga(sample, json!({"timeout": "soon"})),
            "spec.sagas[0].timeout",
        ),
        (
            saga(sample, json!({"steps": [], "pivot": null})),
            "spec.sagas[0].steps",
        ),
        (
            saga(sample, json!({"pivot": "no-such-step"})),
            "spec.sagas[0].pivot",
        ),
        (
            step(sample, 1, json!({"name": "reserve-funds"})),
            "spec.sagas[0].steps[1].name",
        ),
        (
            step(sample, 0, json!({"service": "Payment_Service"})),
            "spec.sagas[0].steps[0].service",
        ),
        (
            step(sample, 2, json!({"compensation": null})),
            "spec.sagas[0].steps[2].compensation",
        ),
        (
            step(sample, 0, json!({"timeout": "0s"})),
            "spec.sagas[0].steps[0].timeout",
        ),
        (
            step(sample, 0, json!({"timeout": "5m"})),
            "spec.sagas[0].steps[0].timeout",
        ),
        (
            step(sample, 0, json!({"retry": {"maxAttempts": 21}})),
            "spec.sagas[0].steps[0].retry.maxAttempts",
        ),
        (
            step(sample, 0, json!({"retry": {"backoff": "nope"}})),
            "spec.sagas[0].steps[0].retry.backoff",
        ),
        (
            step(sample, 1, json!({"retry": {"backoff": "6s"}})),
            "spec.sagas[0].steps[1].retry.backoff",
        ),
    ]
}

#[tokio::test]
async fn every_rule_is_refused_at_admission_naming_the_saga_step_and_field() -> Result<()> {
    let (webhook, sample) = harness().await?;
    webhook
        .refuses_each(&sample, &broken(&sample), None)
        .await?;
    let allowed = webhook.validate("CREATE", &sample, None).await?;
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
    let answer = webhook.validate("CREATE", &single, None).await?;
    assert!(answer.allowed, "{}", answer.message);
    assert_eq!(answer.warnings.len(), 1, "{:?}", answer.warnings);
    Ok(())
}

#[tokio::test]
async fn defaults_are_patched_in_and_nothing_written_is_changed() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let bare = merged(
        &sample,
        json!({"spec": {"definitionHistoryLimit": null, "drainTimeout": null}}),
    );
    let answer = webhook.mutate(&bare).await?;
    assert!(answer.allowed);
    let spec = answer.patched.unwrap_or_default()["spec"].clone();
    assert_eq!(spec["definitionHistoryLimit"], 3);
    assert!(spec["drainTimeout"].is_string(), "{spec}");
    assert_eq!(spec["sagas"][0]["steps"][0]["name"], "reserve-funds");
    assert_eq!(spec["persistence"], sample["spec"]["persistence"]);
    Ok(())
}
