//! The BatchProcessor's admission webhooks over real HTTPS: every rule of `validate.rs`
//! refused naming its field, where runs read and write kept fixed while a run is active,
//! warnings, and the spec's defaults patched in.

use anyhow::Result;
use batch_processor::OPERATOR;
use operator_harness::admission::{AdmissionHarness, merged};
use serde_json::{Value, json};

async fn harness() -> Result<(AdmissionHarness, Value)> {
    AdmissionHarness::with_sample(OPERATOR.admission, "daily-payment-batch", "BatchProcessor").await
}

fn blob(account: &str, container: &str, secret: &str) -> Value {
    json!({"storageAccount": account, "container": container, "secretName": secret})
}

#[tokio::test]
async fn every_rule_is_refused_at_admission_naming_its_field() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let cases = include_str!("cases/refused.yaml");
    webhook.refuses_each(&sample, cases, None).await?;
    Ok(())
}

#[tokio::test]
async fn where_runs_read_cannot_change_while_a_run_is_active() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let moved = merged(
        &sample,
        json!({"spec": {"input": {"type": "azureblob", "sftpConfig": null,
            "blobConfig": blob("incomingpayments", "incoming", "blob-credentials")}}}),
    );
    let running = merged(
        &sample,
        json!({"status": {"activeRun": {"job": "daily-payment-batch-29112026", "attempt": 1}}}),
    );
    let refused = webhook.validate("UPDATE", &moved, Some(&running)).await?;
    assert!(!refused.allowed);
    assert_eq!(refused.fields, ["spec.input.type"]);
    assert!(
        refused.message.contains(
            "cannot change from sftp to azureblob while run daily-payment-batch-29112026 is active"
        ),
        "{}",
        refused.message
    );

    let idle = webhook.validate("UPDATE", &moved, Some(&sample)).await?;
    assert!(
        idle.allowed,
        "with no run active the change goes through: {}",
        idle.message
    );
    let created = webhook.validate("CREATE", &moved, None).await?;
    assert!(created.allowed);
    Ok(())
}

#[tokio::test]
async fn no_dead_letter_is_admitted_with_a_warning() -> Result<()> {
    let (webhook, sample) = harness().await?;
    webhook
        .one_warning(&sample, "spec.deadLetter is not set")
        .await?;
    let kept = merged(
        &sample,
        json!({"spec": {"deadLetter": blob("deadletters", "failed", "blob-credentials")}}),
    );
    assert!(
        webhook
            .validate("CREATE", &kept, None)
            .await?
            .warnings
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn defaults_are_patched_in_and_nothing_written_is_changed() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let patched = webhook.defaulted(&sample).await?;
    assert_eq!(patched["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(patched["spec"]["suspend"], false);
    assert_eq!(patched["spec"]["retry"]["maxAttempts"], 3, "as written");
    for (key, value) in sample["spec"].as_object().into_iter().flatten() {
        if value.is_object() {
            for (inner, v) in value.as_object().into_iter().flatten() {
                assert_eq!(&patched["spec"][key][inner], v, "spec.{key}.{inner} kept");
            }
        } else {
            assert_eq!(&patched["spec"][key], value, "spec.{key} kept");
        }
    }
    Ok(())
}
