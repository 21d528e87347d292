//! The PaymentService's admission webhooks over real HTTPS: every rule of `validate.rs`
//! refused naming its field, the sample allowed, warnings, and seed defaults patched in.

use anyhow::Result;
use operator_harness::admission::{AdmissionHarness, merged};
use payment_service::OPERATOR;
use payment_service::crd::conversion::{V2, convert};
use serde_json::{Value, json};

/// The seed sample as the webhook receives it: in v2, the stored version, which the API
/// server converts a v1 request to before calling it (`matchPolicy: Equivalent`).
async fn harness() -> Result<(AdmissionHarness, Value)> {
    let (webhook, seed) = AdmissionHarness::with_sample(
        OPERATOR.admission,
        "payment-initiation-service",
        "PaymentService",
    )
    .await?;
    Ok((webhook, convert(seed, V2)?))
}

#[tokio::test]
async fn every_rule_is_refused_at_admission_naming_its_field() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let cases = include_str!("cases/refused.yaml");
    let allowed = webhook.refuses_each(&sample, cases, None).await?;
    assert!(allowed.warnings.is_empty(), "{:?}", allowed.warnings);
    Ok(())
}

#[tokio::test]
async fn a_single_replica_is_admitted_with_a_warning() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let single = merged(&sample, json!({"spec": {"replicas": 1}}));
    webhook.one_warning(&single, "spec.replicas is 1").await?;
    Ok(())
}

#[tokio::test]
async fn defaults_are_patched_in_and_nothing_written_is_changed() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let minimal = json!({
        "apiVersion": "payments.io/v2", "kind": "PaymentService",
        "metadata": {"name": "ledger", "namespace": "payments"},
        "spec": {"version": "2.0.0", "image": "registry.example/ledger:2.0.0",
            "autoscaling": {"maxReplicas": 4}},
    });
    assert_eq!(
        webhook.defaulted(&minimal).await?["spec"],
        json!({"version": "2.0.0", "image": "registry.example/ledger:2.0.0", "replicas": 1,
            "autoscaling": {"enabled": false, "maxReplicas": 4}})
    );
    let complete = webhook.defaulted(&sample).await?;
    assert_eq!(complete, sample, "the sample has nothing to add");
    Ok(())
}
