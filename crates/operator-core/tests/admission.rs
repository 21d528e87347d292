//! The admission webhooks as the runtime serves them: on every replica, the standby too,
//! each on its own address with the certificate from its directory.

use std::time::Duration;

use crate::common::*;
use anyhow::{Context as _, Result};
use operator_core::FieldError;
use operator_core::admission::Admitted;
use operator_core::metrics::Metrics;
use operator_core::runtime::config::{WebhookCertificate, WebhookConfig};
use operator_core::runtime::{self, Background};
use operator_core::validation::SpecRules;
use serde_json::json;
use testkit::tls::LocalCa;

pub(crate) async fn free_port() -> Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?)
}

async fn replica(
    server: &testkit::ApiServer,
    identity: &str,
    ca: &LocalCa,
) -> Result<(Background, std::net::SocketAddr)> {
    let dir = ca.serving_directory(&[])?;
    let address = free_port().await?;
    let mut config = leader_elected_config(identity);
    config.webhook = Some(WebhookConfig {
        address,
        certificate: WebhookCertificate::Files(dir),
    });
    let background = runtime::spawn(server.client(), config, Metrics::new(), |rt| {
        rt.admission_webhooks(WIDGETS, &[]).into_iter().collect()
    });
    Ok((background, address))
}

async fn review(
    ca: &LocalCa,
    address: std::net::SocketAddr,
    size: i32,
) -> Result<serde_json::Value> {
    review_trusting(ca.pem().as_bytes(), address, size).await
}

/// A review of a widget of `size`, sent to `address` trusting only the CAs of `ca_pem`.
pub(crate) async fn review_trusting(
    ca_pem: &[u8],
    address: std::net::SocketAddr,
    size: i32,
) -> Result<serde_json::Value> {
    let body = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "1", "operation": "CREATE", "name": "w", "namespace": "default",
            "kind": {"group": "example.io", "version": "v1", "kind": "Widget"},
            "resource": {"group": "example.io", "version": "v1", "resource": "widgets"},
            "userInfo": {}, "object": {"apiVersion": "example.io/v1", "kind": "Widget",
                "metadata": {"name": "w"}, "spec": {"size": size}}},
    });
    let url = format!(
        "https://127.0.0.1:{}{}",
        address.port(),
        WIDGETS[0].validate_path()
    );
    let mut last = None;
    // The server starts listening once the runtime is up: on a loaded machine (the whole
    // workspace's tests on two cores) that has taken more than 5 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        match testkit::webhook::call(
            &url,
            ca_pem,
            serde_json::to_vec(&body)?,
            Duration::from_secs(5),
        )
        .await
        {
            Ok((_, answer)) => {
                return Ok(
                    serde_json::from_slice::<serde_json::Value>(&answer)?["response"].clone(),
                );
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("no answer: {last:?}")
}

#[tokio::test]
async fn the_leader_and_the_standby_both_serve_admission() -> Result<()> {
    let server = server_with_crd().await?;
    let ca = LocalCa::new("replica CA")?;
    let ((a_stop, a_task), a_address) = replica(&server, "a", &ca).await?;
    let lease_holder = || {
        server
            .object("coordination.k8s.io/v1", "leases", "default", LEASE)
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
    };
    for _ in 0..100 {
        if lease_holder().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lease_holder().as_deref(), Some("a"));
    let ((b_stop, b_task), b_address) = replica(&server, "b", &ca).await?;

    for address in [a_address, b_address] {
        assert_eq!(review(&ca, address, 3).await?["allowed"], true);
        let denied = review(&ca, address, 11).await?;
        assert_eq!(denied["allowed"], false);
        assert_eq!(
            denied["status"]["details"]["causes"][0]["field"],
            "spec.size"
        );
    }
    assert_eq!(
        lease_holder().as_deref(),
        Some("a"),
        "b answered as a standby"
    );

    for stop in [&b_stop, &a_stop] {
        stop.send_replace(true);
    }
    b_task.await??;
    a_task.await??;
    Ok(())
}

/// Widgets admitted up to size 10, with a warning above 5 and a label the mutating webhook adds.
pub(crate) const WIDGETS: &[Admitted] = &[Admitted {
    default: Some(|object| {
        let mut object = object.clone();
        object["metadata"]["labels"]["example.io/sized"] = json!("true");
        Ok(object)
    }),
    ..Admitted::of::<Widget>()
}];

impl SpecRules for WidgetSpec {
    fn errors(&self, _name: &str) -> Vec<FieldError> {
        (self.size > 10)
            .then(|| FieldError::new("spec.size", "must be at most 10"))
            .into_iter()
            .collect()
    }

    fn warnings(&self) -> Vec<String> {
        (self.size > 5)
            .then(|| "spec.size above 5 is slow".to_string())
            .into_iter()
            .collect()
    }
}

/// A webhook server for `WIDGETS` with a certificate for `names`, and the
/// configurations that send widget writes in `default` to it (by URL, or by Service when
/// `service` is set).
struct Served {
    ca: LocalCa,
    address: std::net::SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
}

async fn serve_widgets(server: &testkit::ApiServer, names: &[&str]) -> Result<Served> {
    let ca = LocalCa::new(&format!("testkit webhook CA {}", rand_suffix()))?;
    let dir = ca.serving_directory(names)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let webhooks = operator_core::admission::WebhookServer::new(
        WIDGETS,
        server.client(),
        operator_core::admission::ServingCertificate::in_dir(&dir),
    );
    tokio::spawn(webhooks.serve(
        listener,
        operator_core::readiness::Readiness::default(),
        stop_rx,
    ));
    Ok(Served { ca, address, stop })
}

/// A number no other call in this process returns: each server's directory is its own.
fn rand_suffix() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

fn configurations(
    served: &Served,
    client: serde_json::Value,
    policy: &str,
    selector: serde_json::Value,
) -> [serde_json::Value; 2] {
    let ca = serde_json::to_value(k8s_openapi::ByteString(served.ca.pem().as_bytes().to_vec()))
        .unwrap_or_default();
    let hook = |name: &str, path: String| {
        let mut client = client.clone();
        client["caBundle"] = ca.clone();
        if client["url"].is_string() {
            client["url"] = json!(format!("https://{}{path}", served.address));
        } else {
            client["service"]["path"] = json!(path);
        }
        json!({
            "name": name, "clientConfig": client, "failurePolicy": policy, "sideEffects": "None",
            "admissionReviewVersions": ["v1"], "timeoutSeconds": 5, "namespaceSelector": selector,
            "matchConditions": [{"name": "spec-changed",
                "expression": "request.operation != 'UPDATE' || object.spec != oldObject.spec"}],
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["example.io"],
                "apiVersions": ["v1"], "resources": ["widgets"], "scope": "Namespaced"}],
        })
    };
    [
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "widgets"}, "webhooks": [hook("default.widget.example.io", WIDGETS[0].mutate_path())]}),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "widgets"}, "webhooks": [hook("validate.widget.example.io", WIDGETS[0].validate_path())]}),
    ]
}

fn install(server: &testkit::ApiServer, configurations: [serde_json::Value; 2]) -> Result<()> {
    for configuration in configurations {
        server.create_from_yaml(&serde_json::to_string(&configuration)?)?;
    }
    Ok(())
}

fn everywhere() -> serde_json::Value {
    json!({})
}

async fn create(server: &testkit::ApiServer, name: &str, size: i32) -> Result<Widget, kube::Error> {
    let api: kube::Api<Widget> = kube::Api::default_namespaced(server.client());
    api.create(
        &kube::api::PostParams::default(),
        &Widget::new(name, WidgetSpec { size }),
    )
    .await
}

/// testkit calls the webhooks the stored configurations register, as an API server does:
/// a refusal carries the webhook's words and causes, a defaulting patch is stored, warnings
/// come back as `Warning` headers.
#[tokio::test]
async fn testkit_calls_the_webhooks_as_an_api_server_does() -> Result<()> {
    let server = server_with_crd().await?;
    let served = serve_widgets(&server, &[]).await?;
    install(
        &server,
        configurations(&served, json!({"url": ""}), "Fail", everywhere()),
    )?;

    let stored = create(&server, "small", 3).await?;
    assert_eq!(
        stored
            .metadata
            .labels
            .unwrap_or_default()
            .get("example.io/sized")
            .map(String::as_str),
        Some("true"),
        "the mutating webhook's patch is stored"
    );
    let refused = create(&server, "big", 11).await;
    let Err(kube::Error::Api(status)) = refused else {
        anyhow::bail!("admitted: {refused:?}");
    };
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    assert_eq!(
        status.message,
        "admission webhook \"validate.widget.example.io\" denied the request: Widget \"big\" is invalid: spec.size: must be at most 10"
    );
    assert!(
        server
            .object("example.io/v1", "widgets", "default", "big")
            .is_none()
    );

    // Warnings, as kubectl would print them.
    use tower::ServiceExt;
    let request = http::Request::post("/apis/example.io/v1/namespaces/default/widgets")
        .header("content-type", "application/json")
        .body(kube::client::Body::from(serde_json::to_vec(&json!({
            "apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "slow"}, "spec": {"size": 7}}))?))?;
    let response = server.clone().oneshot(request).await?;
    assert_eq!(response.status(), 201);
    let warnings: Vec<&str> = response
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(warnings, ["299 - \"spec.size above 5 is slow\""]);

    // An update of metadata only leaves the spec as it was: the matchCondition spares the call,
    // so it goes through even while the webhook is down; a spec change is refused then.
    served.stop.send_replace(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let api: kube::Api<Widget> = kube::Api::default_namespaced(server.client());
    let label = json!({"metadata": {"labels": {"team": "payments"}}});
    api.patch(
        "small",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&label),
    )
    .await?;
    let resize = json!({"spec": {"size": 4}});
    let down = api
        .patch(
            "small",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&resize),
        )
        .await;
    let Err(kube::Error::Api(status)) = down else {
        anyhow::bail!("admitted with the webhook down: {down:?}");
    };
    assert_eq!(status.code, 500, "failurePolicy Fail: {}", status.message);
    assert!(
        status
            .message
            .contains("failed calling webhook \"default.widget.example.io\""),
        "{}",
        status.message
    );
    Ok(())
}

#[tokio::test]
async fn failure_policy_ignore_and_selectors_decide_who_is_called() -> Result<()> {
    let server = server_with_crd().await?;
    let served = serve_widgets(&server, &[]).await?;
    served.stop.send_replace(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    install(
        &server,
        configurations(&served, json!({"url": ""}), "Ignore", everywhere()),
    )?;
    create(&server, "unjudged", 99).await?;

    let server = server_with_crd().await?;
    let served = serve_widgets(&server, &[]).await?;
    let elsewhere = json!({"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["payments"]}]});
    install(
        &server,
        configurations(&served, json!({"url": ""}), "Fail", elsewhere),
    )?;
    create(&server, "not-in-payments", 99)
        .await
        .context("the namespace selector leaves default out")?;
    Ok(())
}

#[tokio::test]
async fn a_service_webhook_is_verified_for_the_services_name() -> Result<()> {
    let service =
        json!({"service": {"name": "widgets-webhook", "namespace": "kube-system", "port": 443}});
    let server = server_with_crd().await?;
    let served = serve_widgets(&server, &["widgets-webhook.kube-system.svc"]).await?;
    server.route_service("kube-system", "widgets-webhook", 443, served.address);
    install(
        &server,
        configurations(&served, service.clone(), "Fail", everywhere()),
    )?;
    assert!(
        create(&server, "big", 11).await.is_err(),
        "refused by the webhook"
    );
    create(&server, "small", 1).await?;

    let server = server_with_crd().await?;
    let wrong = serve_widgets(&server, &["other.kube-system.svc"]).await?;
    server.route_service("kube-system", "widgets-webhook", 443, wrong.address);
    install(
        &server,
        configurations(&wrong, service, "Fail", everywhere()),
    )?;
    let refused = create(&server, "small", 1).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 500 && s.message.contains("failed calling webhook")),
        "a certificate for another name is not trusted: {refused:?}"
    );
    Ok(())
}

/// 300 idle connections on each port (no TLS handshake, no request) cannot lock the API
/// server's admission call or the kubelet's readiness probe out: a full listener sheds its
/// oldest idle connection, and each listener has a budget of its own.
#[tokio::test]
async fn idle_connections_cannot_starve_admission_or_readiness() -> Result<()> {
    let server = server_with_crd().await?;
    let ca = LocalCa::new("starved CA")?;
    let dir = std::env::temp_dir().join(format!("webhook-starved-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let issued = ca.server_certificate(&[])?;
    std::fs::write(dir.join("tls.crt"), issued.cert_pem)?;
    std::fs::write(dir.join("tls.key"), issued.key_pem)?;
    let (webhook, health) = (free_port().await?, free_port().await?);
    let mut config = leader_elected_config("starved");
    config.webhook = Some(WebhookConfig {
        address: webhook,
        certificate: WebhookCertificate::Files(dir),
    });
    config.health_address = Some(health);
    let (stop, task) = runtime::spawn(server.client(), config, Metrics::new(), |rt| {
        rt.admission_webhooks(WIDGETS, &[]).into_iter().collect()
    });
    // Up and answering before the flood.
    assert_eq!(review(&ca, webhook, 3).await?["allowed"], true);

    let mut idle = Vec::new();
    for address in [webhook, health] {
        for _ in 0..300 {
            idle.push(tokio::net::TcpStream::connect(address).await?);
        }
    }
    let answered = tokio::time::timeout(Duration::from_secs(1), async {
        let admission = review(&ca, webhook, 3).await?;
        let readiness = readyz(health).await?;
        anyhow::Ok((admission, readiness))
    })
    .await
    .context("not answered within a second while 600 idle connections are held")??;
    assert_eq!(answered.0["allowed"], true);
    assert!(answered.1.starts_with("HTTP/1.1 200"), "{}", answered.1);
    drop(idle);

    stop.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    Ok(())
}

async fn readyz(address: std::net::SocketAddr) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut probe = tokio::net::TcpStream::connect(address).await?;
    probe
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = String::new();
    probe.read_to_string(&mut answer).await?;
    Ok(answer)
}
