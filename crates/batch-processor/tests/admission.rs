//! The BatchProcessor's admission webhooks over real HTTPS: every rule of `validate.rs`
//! refused naming its field, where runs read and write kept fixed while a run is active,
//! warnings, and the spec's defaults patched in.

use anyhow::Result;
use batch_processor::OPERATOR;
use operator_harness::admission::{AdmissionHarness, merged};
use serde_json::{Value, json};

operator_harness::admission_tests!(OPERATOR);

async fn harness() -> Result<(AdmissionHarness, Value)> {
    AdmissionHarness::with_sample(&OPERATOR, "daily-payment-batch", "BatchProcessor").await
}

fn blob(account: &str, container: &str, secret: &str) -> Value {
    json!({"storageAccount": account, "container": container, "secretName": secret})
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
