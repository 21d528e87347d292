//! What the operator must never do to a cluster: take over another team's objects, hang a
//! namespace deletion, or leave a resource without a status when one child is refused.

use anyhow::{Context as _, Result};
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, PostParams};
use operator_core::monitoring::ServiceMonitor;
use payment_service::crd::{CleanupReport, PaymentService};
use serde_json::{Value, json};

use crate::common::{
    Harness, NS, Payments, SEED, Setup, condition, sample_with, seed_sample, start,
};

fn status_of(h: &Harness, name: &str) -> Value {
    h.get("payments.io/v2", "paymentservices", name)
        .map(|o| o["status"].clone())
        .unwrap_or_default()
}

fn ready_of(h: &Harness, name: &str) -> Value {
    condition(&status_of(h, name), "Ready")
}

/// The incident: a PaymentService named like another team's Service, naming their
/// ServiceAccount, rewrote the Service's selector, took both over, and deleting it deleted
/// them.
#[tokio::test]
async fn another_teams_service_and_account_are_never_taken_over() -> Result<()> {
    let h = start(Setup::default()).await?;
    let services: Api<Service> = Api::namespaced(h.client(), NS);
    let accounts: Api<ServiceAccount> = Api::namespaced(h.client(), NS);
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "ledger-api", "labels": {"team": "ledger"}},
                "spec": {"selector": {"app": "ledger"}, "ports": [{"port": 443}]},
            }))?,
        )
        .await?;
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "other-team-sa"}}))?,
        )
        .await?;
    let service_before = h.get("v1", "services", "ledger-api");
    let account_before = h.get("v1", "serviceaccounts", "other-team-sa");

    let mut ps: PaymentService = sample_with(|spec| {
        spec["security"]["rbac"]["serviceAccountName"] = json!("other-team-sa");
    })?;
    ps.metadata.name = Some("ledger-api".into());
    h.services().create(&PostParams::default(), &ps).await?;

    h.eventually("Ready=False ChildNameConflict", |h| {
        ready_of(h, "ledger-api")["reason"] == "ChildNameConflict"
    })
    .await?;
    let ready = ready_of(&h, "ledger-api");
    assert_eq!(ready["status"], "False");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Service ledger-api already exists and was not created by this operator"),
        "{message}"
    );
    h.eventually("a Warning event naming the Service", |h| {
        h.events("ChildNameConflict").iter().any(|e| {
            e["type"] == "Warning"
                && e["note"]
                    .as_str()
                    .is_some_and(|n| n.contains("Service ledger-api"))
        })
    })
    .await?;
    assert_eq!(
        h.get("v1", "services", "ledger-api"),
        service_before,
        "the other team's Service is untouched"
    );
    assert_eq!(
        h.get("v1", "serviceaccounts", "other-team-sa"),
        account_before,
        "the named ServiceAccount is used, never changed or owned"
    );
    // The rest was applied, and the pods run as the account the user named.
    let d = h.deployment("ledger-api").context("the Deployment")?;
    assert_eq!(
        d["spec"]["template"]["spec"]["serviceAccountName"],
        "other-team-sa"
    );
    assert_eq!(status_of(&h, "ledger-api")["observedGeneration"], 1);

    // Deleting the PaymentService leaves both where they were.
    h.delete_until_gone::<PaymentService>(NS, "ledger-api")
        .await?;
    h.eventually("its own children gone", |h| {
        h.deployment("ledger-api").is_none()
    })
    .await?;
    assert!(services.get_opt("ledger-api").await?.is_some());
    assert!(accounts.get_opt("other-team-sa").await?.is_some());
    Ok(())
}

/// A ServiceAccount the user names and that does not exist is created and owned, so it goes
/// with the service.
#[tokio::test]
async fn a_named_account_that_does_not_exist_is_created_and_owned() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;
    let sa = h
        .get("v1", "serviceaccounts", "payment-gateway-sa")
        .context("created")?;
    assert_eq!(
        sa["metadata"]["ownerReferences"][0]["kind"],
        "PaymentService"
    );
    Ok(())
}

/// In a namespace being deleted every create is refused, Events included: the cleanup keeps
/// its record in status and the log, and the namespace goes.
#[tokio::test]
async fn deleting_the_namespace_completes_and_the_cleanup_record_is_kept() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;
    // The last state of the PaymentService before it went carried the cleanup record.
    let cleanup: CleanupReport = h.delete_namespace_keeping(NS, "cleanup").await?;
    // The namespace controller deletes the Deployments too, so which of them the cleanup
    // found is a race; the record and its time are what must be there.
    assert!(cleanup.deleted_deployments.len() <= 1, "{cleanup:?}");
    Ok(())
}

/// One child the API server refuses (here a ServiceMonitor its CRD's rule rejects) must not
/// keep the others, or the status, from being written.
#[tokio::test]
async fn a_refused_child_is_reported_and_the_rest_is_applied() -> Result<()> {
    let h = start(Setup::default()).await?;
    let mut crd = serde_json::to_value(ServiceMonitor::crd())?;
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] = json!([
        {"rule": "self.endpoints.all(e, e.interval.endsWith('m'))", "message": "scrape intervals must be whole minutes"}
    ]);
    Api::<CustomResourceDefinition>::all(h.client())
        .create(&PostParams::default(), &serde_json::from_value(crd)?)
        .await?;
    h.create(&seed_sample()?).await?;

    h.eventually("Ready=False ChildRejected", |h| {
        h.condition("Ready")["reason"] == "ChildRejected"
    })
    .await?;
    let message = h.condition("Ready")["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("ServiceMonitor payment-initiation-service")
            && message.contains("scrape intervals must be whole minutes"),
        "the child and the server's message: {message}"
    );
    let status = h.status();
    assert_eq!(status["observedGeneration"], 1);
    assert!(status["phase"].is_string(), "{status}");
    assert!(h.deployment(SEED).is_some(), "the rest was applied");
    assert!(h.get("v1", "services", SEED).is_some());
    Ok(())
}
