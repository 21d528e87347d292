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

/// Each rule: a change to the sample that breaks it, and the field the refusal names.
fn broken() -> Vec<(Value, &'static str)> {
    vec![
        (
            json!({"metadata": {"name": "a".repeat(60)}}),
            "metadata.name",
        ),
        (json!({"spec": {"schedule": "61 2 * * *"}}), "spec.schedule"),
        (json!({"spec": {"image": " "}}), "spec.image"),
        (json!({"spec": {"batchSize": 0}}), "spec.batchSize"),
        (json!({"spec": {"parallelism": 101}}), "spec.parallelism"),
        (
            json!({"spec": {"input": {"sftpConfig": null}}}),
            "spec.input",
        ),
        (
            json!({"spec": {"output": {"sftpConfig": {"host": "h", "port": 22, "path": "/x", "secretName": "s"}}}}),
            "spec.output",
        ),
        (
            json!({"spec": {"input": {"sftpConfig": {"host": "not a host"}}}}),
            "spec.input.sftpConfig.host",
        ),
        (
            json!({"spec": {"input": {"sftpConfig": {"port": 0}}}}),
            "spec.input.sftpConfig.port",
        ),
        (
            json!({"spec": {"input": {"sftpConfig": {"path": "incoming"}}}}),
            "spec.input.sftpConfig.path",
        ),
        (
            json!({"spec": {"input": {"sftpConfig": {"secretName": "Sftp_Creds"}}}}),
            "spec.input.sftpConfig.secretName",
        ),
        (
            json!({"spec": {"output": {"blobConfig": {"storageAccount": "Payments_Blob"}}}}),
            "spec.output.blobConfig.storageAccount",
        ),
        (
            json!({"spec": {"output": {"blobConfig": {"container": "-bad"}}}}),
            "spec.output.blobConfig.container",
        ),
        (
            json!({"spec": {"output": {"blobConfig": {"secretName": "Blob_Creds"}}}}),
            "spec.output.blobConfig.secretName",
        ),
        (
            json!({"spec": {"deadLetter": blob("x", "dead-letters", "blob-credentials")}}),
            "spec.deadLetter.storageAccount",
        ),
        (
            json!({"spec": {"retry": {"maxAttempts": 11}}}),
            "spec.retry.maxAttempts",
        ),
        (
            json!({"spec": {"retry": {"backoffLimit": -1}}}),
            "spec.retry.backoffLimit",
        ),
        (
            json!({"spec": {"retry": {"backoffSeconds": 0}}}),
            "spec.retry.backoffSeconds",
        ),
        (
            json!({"spec": {"successfulJobsHistoryLimit": 101}}),
            "spec.successfulJobsHistoryLimit",
        ),
        (
            json!({"spec": {"failedJobsHistoryLimit": -1}}),
            "spec.failedJobsHistoryLimit",
        ),
        (json!({"spec": {"timeZone": "not a zone"}}), "spec.timeZone"),
        (
            json!({"spec": {"activeDeadlineSeconds": 5}}),
            "spec.activeDeadlineSeconds",
        ),
        (
            json!({"spec": {"failedPaymentsThreshold": "150%"}}),
            "spec.failedPaymentsThreshold",
        ),
        (
            json!({"spec": {"failedPaymentsThreshold": -1}}),
            "spec.failedPaymentsThreshold",
        ),
        (
            json!({"spec": {"monitoring": {"alertEmail": "ops"}}}),
            "spec.monitoring.alertEmail",
        ),
        (
            json!({"spec": {"input": {"type": "ftp"}}}),
            "spec.input.type",
        ),
    ]
}

#[tokio::test]
async fn every_rule_is_refused_at_admission_naming_its_field() -> Result<()> {
    let (webhook, sample) = harness().await?;
    webhook.refuses_each(&sample, &broken(), None).await?;
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
    let answer = webhook.validate("CREATE", &sample, None).await?;
    assert!(answer.allowed);
    assert!(
        answer.warnings[0].starts_with("spec.deadLetter is not set"),
        "{:?}",
        answer.warnings
    );
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
    let answer = webhook.mutate(&sample).await?;
    assert!(answer.allowed);
    let patched = answer.patched.unwrap_or_default();
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
