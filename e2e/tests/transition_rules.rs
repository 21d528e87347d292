//! The CRDs' transition rules (`oldSelf`) on a real API server with no webhook for the
//! namespace — deploy/crds alone, as when an operator's webhooks are down: a field that may
//! not change, one that may not fall, and one fixed while the status says a run is active,
//! each refused by the API server with a message naming the values and what to do instead.
//! Skipped without `E2E_CLUSTER=1`.

use anyhow::{Result, bail};
use batch_processor::crd::BatchProcessor;
use kube::api::{Api, Patch, PatchParams, PostParams};
use operator_harness::sample_of_kind;
use payment_service::crd::PaymentService;
use payment_service::crd::conversion::{V2, convert};
use saga_orchestrator::crd::SagaOrchestrator;
use serde_json::{Value, json};

/// Creates the sample `name` of `kind` in `namespace` (v2 for a PaymentService: no
/// conversion webhook runs here) and returns its kind's API.
async fn create_sample<K>(ns: &e2e::TestNamespace, name: &str, kind: &str) -> Result<Api<K>>
where
    K: operator_harness::NamespacedKind + serde::Serialize,
{
    let mut sample = sample_of_kind(name, kind)?;
    if kind == "PaymentService" {
        sample = convert(sample, V2)?;
    }
    sample["metadata"]["namespace"] = json!(ns.name);
    let api: Api<K> = Api::namespaced(ns.client.clone(), &ns.name);
    api.create(&PostParams::default(), &serde_json::from_value(sample)?)
        .await?;
    Ok(api)
}

async fn merge<K>(api: &Api<K>, name: &str, patch: Value) -> Result<K, kube::Error>
where
    K: operator_harness::NamespacedKind,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
}

/// A 422 whose cause is `field: Forbidden: <message…>`.
fn forbidden<K: std::fmt::Debug>(
    result: Result<K, kube::Error>,
    field: &str,
    message: &str,
) -> Result<()> {
    let expected = format!("{field}: Forbidden: {message}");
    match result {
        Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains(&expected) => Ok(()),
        other => bail!("expected 422 with {expected:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn immutable_and_no_shrink_fields_are_refused_by_the_api_server_itself() -> Result<()> {
    let Some(ns) = e2e::cluster("transitions").await? else {
        return Ok(());
    };

    let service = "payment-initiation-service";
    let services: Api<PaymentService> = create_sample(&ns, service, "PaymentService").await?;
    let retention = |days: i32| json!({"spec": {"backup": {"retention": days}}});
    forbidden(
        merge(&services, service, retention(7)).await,
        "spec.backup.retention",
        "cannot fall from 30 to 7 days while backups are enabled",
    )?;
    merge(
        &services,
        service,
        json!({"spec": {"backup": {"enabled": false}}}),
    )
    .await?;
    merge(&services, service, retention(7)).await?;

    let saga = "payment-saga";
    let sagas: Api<SagaOrchestrator> = create_sample(&ns, saga, "SagaOrchestrator").await?;
    forbidden(
        merge(
            &sagas,
            saga,
            json!({"spec": {"persistence": {"type": "redis"}}}),
        )
        .await,
        "spec.persistence.type",
        "cannot change from postgresql to redis",
    )?;

    let batch = "daily-payment-batch";
    let batches: Api<BatchProcessor> = create_sample(&ns, batch, "BatchProcessor").await?;
    let active = |run: Value| Patch::Merge(json!({"status": {"activeRun": run}}));
    let run = json!({"job": "daily-payment-batch-29112026", "attempt": 1});
    batches
        .patch_status(batch, &PatchParams::default(), &active(run))
        .await?;
    let to_blob = json!({"spec": {"input": {"type": "azureblob", "sftpConfig": null,
        "blobConfig": {"storageAccount": "incomingpayments", "container": "incoming", "secretName": "blob-credentials"}}}});
    forbidden(
        merge(&batches, batch, to_blob.clone()).await,
        "spec.input.type",
        "cannot change from sftp to azureblob while run daily-payment-batch-29112026 is active",
    )?;
    batches
        .patch_status(batch, &PatchParams::default(), &active(Value::Null))
        .await?;
    merge(&batches, batch, to_blob).await?;

    ns.cleanup().await
}
