//! The admission webhooks as the runtime serves them: on every replica, the standby too,
//! each on its own address with the certificate from its directory.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::*;
use operator_core::FieldError;
use operator_core::admission::{Admitted, check_spec};
use operator_core::runtime::config::WebhookConfig;
use operator_core::runtime::metrics::Metrics;
use operator_core::runtime::{self, Background};
use serde_json::json;
use testkit::tls::LocalCa;

const WIDGETS: &[Admitted] = &[Admitted {
    group: "example.io",
    version: "v1",
    kind: "Widget",
    plural: "widgets",
    subresources: &[],
    validate: |review, _| {
        Box::pin(std::future::ready(check_spec(
            review,
            |_, spec: &WidgetSpec| {
                let errors = (spec.size > 10)
                    .then(|| FieldError::new("spec.size", "must be at most 10"))
                    .into_iter()
                    .collect();
                (errors, Vec::new())
            },
        )))
    },
    default: None,
}];

async fn free_port() -> Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?)
}

async fn replica(
    server: &testkit::ApiServer,
    identity: &str,
    ca: &LocalCa,
) -> Result<(Background, std::net::SocketAddr)> {
    let dir =
        std::env::temp_dir().join(format!("webhook-replica-{identity}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let issued = ca.server_certificate(&[])?;
    std::fs::write(dir.join("tls.crt"), issued.cert_pem)?;
    std::fs::write(dir.join("tls.key"), issued.key_pem)?;
    let address = free_port().await?;
    let mut config = leader_elected_config(identity);
    config.webhook = Some(WebhookConfig {
        address,
        cert_dir: dir,
    });
    let background = runtime::spawn(server.client(), config, Metrics::new(), |rt| {
        rt.admission_webhooks(WIDGETS).into_iter().collect()
    });
    Ok((background, address))
}

async fn review(
    ca: &LocalCa,
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
    // The server starts listening once the runtime is up.
    for _ in 0..50 {
        match testkit::webhook::call(
            &url,
            ca.pem().as_bytes(),
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
