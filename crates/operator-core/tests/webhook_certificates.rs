//! The webhook certificate an operator issues itself: one Secret however many replicas
//! start at once, served by each, renewed without a restart, its CA written where the API
//! server reads it, and a Secret the operator did not create left alone.

use std::time::{Duration, SystemTime};

use crate::admission::{WIDGETS, free_port, review_trusting};
use crate::common::*;
use anyhow::{Context as _, Result};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use operator_core::OperatorIdentity;
use operator_core::admission::certificates::{CertificateSet, Renewal, issue};
use operator_core::admission::self_managed::KeeperError;
use operator_core::admission::{
    CertificateKeeper, SelfManagedCertificates, ServingCertificate, WebhookServer,
};
use operator_core::metrics::Metrics;
use operator_core::readiness::Readiness;
use operator_core::runtime::config::{WebhookCertificate, WebhookConfig};
use operator_core::runtime::{self, Background};
use serde_json::{Value, json};

const IDENTITY: OperatorIdentity = OperatorIdentity {
    manager: "widget-operator",
    app_name: "widgets",
};
const SECRET: &str = "widget-operator-webhook-certificate";

fn own_certificates() -> SelfManagedCertificates {
    SelfManagedCertificates::new(IDENTITY, "default", &["127.0.0.1".to_string()])
}

fn configuration_api(server: &testkit::ApiServer, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
    let plural = format!("{}s", kind.to_lowercase());
    Api::all_with(
        server.client(),
        &ApiResource::from_gvk_with_plural(&gvk, &plural),
    )
}

/// A configuration named `name` whose one webhook matches nothing the tests write.
async fn install_configuration(
    server: &testkit::ApiServer,
    kind: &str,
    name: &str,
    labels: Value,
) -> Result<()> {
    let object = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
        "metadata": {"name": name, "labels": labels},
        "webhooks": [{
            "name": "check.gadget.example.io",
            "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "clientConfig": {"url": "https://127.0.0.1:9/check"},
            "rules": [{"apiGroups": ["example.io"], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["gadgets"]}],
        }],
    });
    configuration_api(server, kind)
        .create(&PostParams::default(), &serde_json::from_value(object)?)
        .await?;
    Ok(())
}

async fn ca_bundle_of(server: &testkit::ApiServer, kind: &str, name: &str) -> Result<Value> {
    let object = configuration_api(server, kind).get(name).await?;
    Ok(serde_json::to_value(object)?["webhooks"][0]["clientConfig"]["caBundle"].clone())
}

async fn secret_ca(server: &testkit::ApiServer) -> Result<Option<Vec<u8>>> {
    let secrets: Api<Secret> = Api::namespaced(server.client(), "default");
    Ok(secrets
        .get_opt(SECRET)
        .await?
        .and_then(|s| s.data)
        .and_then(|d| d.get("ca.crt").map(|b| b.0.clone())))
}

async fn replica(
    server: &testkit::ApiServer,
    identity: &str,
) -> Result<(Background, std::net::SocketAddr)> {
    let address = free_port().await?;
    let mut config = leader_elected_config(identity);
    config.webhook = Some(WebhookConfig {
        address,
        certificate: WebhookCertificate::SelfManaged(own_certificates()),
    });
    let background = runtime::spawn(server.client(), config, Metrics::new(), |rt| {
        rt.admission_webhooks(WIDGETS, &[]).into_iter().collect()
    });
    Ok((background, address))
}

/// Two replicas started together: one Secret, both serve the certificate it holds, and the
/// leader writes its CA into the operator's labelled configuration, not into one that
/// carries another name label.
#[tokio::test]
async fn replicas_starting_together_serve_one_certificate_and_the_leader_publishes_its_ca()
-> Result<()> {
    let server = server_with_crd().await?;
    let ours = json!({"app.kubernetes.io/name": "widgets"});
    install_configuration(
        &server,
        "ValidatingWebhookConfiguration",
        "widgets-validator",
        ours,
    )
    .await?;
    let theirs = json!({"app.kubernetes.io/name": "someone-else"});
    install_configuration(
        &server,
        "MutatingWebhookConfiguration",
        "widgets-defaulter",
        theirs,
    )
    .await?;

    let ((a_stop, a_task), a_address) = replica(&server, "a").await?;
    let ((b_stop, b_task), b_address) = replica(&server, "b").await?;

    let mut ca = None;
    for _ in 0..300 {
        ca = secret_ca(&server).await?;
        if ca.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ca = ca.context("no replica created the certificate Secret")?;
    for address in [a_address, b_address] {
        let answer = review_trusting(&ca, address, 3).await?;
        assert_eq!(answer["allowed"], true, "{answer}");
    }

    let expected = serde_json::to_value(k8s_openapi::ByteString(ca.clone()))?;
    let mut published = Value::Null;
    for _ in 0..300 {
        published = ca_bundle_of(
            &server,
            "ValidatingWebhookConfiguration",
            "widgets-validator",
        )
        .await?;
        if published == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(published, expected, "the leader published the Secret's CA");
    assert_eq!(
        ca_bundle_of(&server, "MutatingWebhookConfiguration", "widgets-defaulter").await?,
        Value::Null,
        "a configuration labelled for another product is left alone"
    );
    let secret: Api<Secret> = Api::namespaced(server.client(), "default");
    let secret = secret.get(SECRET).await?;
    let labels = secret.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("widget-operator")
    );
    assert_eq!(secret.data.map(|d| d.len()), Some(4));

    for stop in [&b_stop, &a_stop] {
        stop.send_replace(true);
    }
    b_task.await??;
    a_task.await??;
    Ok(())
}

/// Another replica renews the CA; this one serves the new certificate within its next
/// check, without a restart: a client trusting only the new CA gets an answer.
#[tokio::test]
async fn a_renewal_written_by_another_replica_is_served_without_a_restart() -> Result<()> {
    let server = server_with_crd().await?;
    let keeper = CertificateKeeper::new(server.client(), own_certificates(), Vec::new())
        .checking_every(Duration::from_millis(100));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (_leading_tx, leading) = tokio::sync::watch::channel(true);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let readiness = Readiness::default();
    let webhooks = WebhookServer::new(
        WIDGETS,
        server.client(),
        ServingCertificate::issued_by_operator(),
    )
    .keeping(keeper.clone(), leading);
    let serving = tokio::spawn(webhooks.serve(listener, readiness.clone(), stop_rx));

    let first_ca = loop {
        if let Some(ca) = secret_ca(&server).await? {
            break ca;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        review_trusting(&first_ca, address, 3).await?["allowed"],
        true
    );

    // What another replica writes when it renews the CA.
    let secrets: Api<Secret> = Api::namespaced(server.client(), "default");
    let mut secret = secrets.get(SECRET).await?;
    let current = secret.data.as_ref().and_then(CertificateSet::from_data);
    let hosts = own_certificates().hosts;
    let renewed = issue(
        current.as_ref(),
        Renewal::Authority,
        "another replica's CA",
        &hosts,
        SystemTime::now(),
    )?;
    secret.data = Some(renewed.to_data());
    secrets
        .replace(SECRET, &PostParams::default(), &secret)
        .await?;
    assert!(renewed.ca_bundle.ends_with(std::str::from_utf8(&first_ca)?));
    let new_ca_only = renewed
        .ca_bundle
        .split_inclusive("-----END CERTIFICATE-----")
        .next()
        .context("a CA")?
        .to_string();
    let answer = review_trusting(new_ca_only.as_bytes(), address, 3).await?;
    assert_eq!(answer["allowed"], true, "{answer}");

    stop.send_replace(true);
    serving.await??;
    Ok(())
}

/// A Secret of that name that the operator did not create: not read into the server, not
/// written, and the error says what to do.
#[tokio::test]
async fn a_secret_the_operator_did_not_create_is_left_alone() -> Result<()> {
    let server = server_with_crd().await?;
    let secrets: Api<Secret> = Api::namespaced(server.client(), "default");
    let theirs: Secret = serde_json::from_value(json!({
        "metadata": {"name": SECRET},
        "stringData": {"tls.crt": "someone else's"},
    }))?;
    let before = secrets.create(&PostParams::default(), &theirs).await?;
    let keeper = CertificateKeeper::new(server.client(), own_certificates(), Vec::new());

    let error = keeper.settle(SystemTime::now()).await.unwrap_err();
    assert!(matches!(error, KeeperError::NotOurs { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("default/widget-operator-webhook-certificate"),
        "{message}"
    );
    assert!(message.contains("delete or rename it"), "{message}");
    let after = secrets.get(SECRET).await?;
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );

    // Served, the webhooks stay unready and say why.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (_leading_tx, leading) = tokio::sync::watch::channel(true);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let readiness = Readiness::default();
    let webhooks = WebhookServer::new(
        WIDGETS,
        server.client(),
        ServingCertificate::issued_by_operator(),
    )
    .keeping(keeper, leading);
    let serving = tokio::spawn(webhooks.serve(listener, readiness.clone(), stop_rx));
    let mut why = None;
    for _ in 0..100 {
        why = readiness.not_ready_because();
        if why.as_deref().is_some_and(|w| w.contains("not created by")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let why = why.unwrap_or_default();
    assert!(
        why.contains("webhook certificate: Secret default/widget-operator-webhook-certificate exists but was not created by widget-operator"),
        "{why}"
    );
    stop.send_replace(true);
    serving.await??;
    assert_eq!(
        secrets.get(SECRET).await?.metadata.resource_version,
        before.metadata.resource_version
    );
    Ok(())
}

/// The CRDs that convert through the webhook get the CA too, once: a second pass writes
/// nothing.
#[tokio::test]
async fn a_converting_crd_gets_the_ca_once() -> Result<()> {
    let server = server_with_crd().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let mut gadgets = serde_json::to_value(Widget::crd())?;
    gadgets["metadata"]["name"] = json!("gadgets.example.io");
    gadgets["spec"]["names"] = json!({"kind": "Gadget", "plural": "gadgets", "singular": "gadget", "listKind": "GadgetList"});
    gadgets["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {
        "conversionReviewVersions": ["v1"],
        "clientConfig": {"url": "https://127.0.0.1:9/convert"}}});
    crds.create(&PostParams::default(), &serde_json::from_value(gadgets)?)
        .await?;
    let keeper = CertificateKeeper::new(
        server.client(),
        own_certificates(),
        vec![
            "gadgets.example.io".to_string(),
            "widgets.example.io".to_string(),
        ],
    );
    let set = keeper.settle(SystemTime::now()).await?;

    assert_eq!(
        keeper.inject(&set.ca_bundle).await?,
        1,
        "only the converting CRD"
    );
    let crd = serde_json::to_value(crds.get("gadgets.example.io").await?)?;
    assert_eq!(
        crd["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"],
        serde_json::to_value(k8s_openapi::ByteString(set.ca_bundle.clone().into_bytes()))?
    );
    assert_eq!(
        keeper.inject(&set.ca_bundle).await?,
        0,
        "converged: nothing written"
    );
    Ok(())
}
