//! The PaymentService operator on a real cluster: the real Deployment controller and kubelet
//! decide availability. A service comes up, upgrades, and an upgrade to an image that does
//! not exist is rolled back at its progress deadline; deletion runs the finalizer. The pause
//! image stands in for a payment service (it runs as non-root and needs no probes).

use std::time::Duration;

use anyhow::{Result, bail};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use operator_core::ControllerSettings;
use operator_core::runtime::config::RuntimeConfig;
use operator_core::runtime::{self, metrics::Metrics};
use payment_service::crd::PaymentService;
use serde_json::{Value, json};

const NAME: &str = "e2e-payments";

async fn until(
    services: &Api<PaymentService>,
    what: &str,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let status = services
            .get_opt(NAME)
            .await?
            .map(|ps| serde_json::to_value(ps.status).unwrap_or_default())
            .unwrap_or_default();
        if check(&status) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{what} did not happen within {limit:?}; status: {status}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn upgrade_and_rollback_on_a_real_cluster() -> Result<()> {
    let Some(ns) = e2e::cluster("payment_service").await? else {
        return Ok(());
    };
    let config = RuntimeConfig::standalone(ControllerSettings {
        resync: Duration::from_secs(5),
        namespace: Some(ns.name.clone()),
        ..ControllerSettings::default()
    });
    let (stop, operator) = runtime::spawn(ns.client.clone(), config, Metrics::new(), |rt| {
        payment_service::controllers(rt, payment_service::Options::default())
    });

    let services: Api<PaymentService> = Api::namespaced(ns.client.clone(), &ns.name);
    let ps: PaymentService = serde_json::from_value(json!({
        "apiVersion": "payments.io/v1", "kind": "PaymentService",
        "metadata": {"name": NAME},
        "spec": {
            "version": "3.10",
            "image": "registry.k8s.io/pause:3.10",
            "replicas": 2,
            "deploymentStrategy": {"type": "RollingUpdate", "progressDeadlineSeconds": 60},
        }
    }))?;
    services.create(&PostParams::default(), &ps).await?;
    until(&services, "Running", Duration::from_secs(180), |s| {
        s["phase"] == "Running" && s["availableReplicas"] == 2
    })
    .await?;

    let upgrade =
        |version: &str, image: &str| json!({"spec": {"version": version, "image": image}});
    services
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(upgrade("3.9", "registry.k8s.io/pause:3.9")),
        )
        .await?;
    until(&services, "3.9 current", Duration::from_secs(180), |s| {
        s["currentVersion"] == "3.9" && s["phase"] == "Running"
    })
    .await?;

    services
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(upgrade("0.0-missing", "registry.k8s.io/pause:0.0-missing")),
        )
        .await?;
    until(&services, "rolled back", Duration::from_secs(240), |s| {
        s["failedRollout"]["target"]["version"] == "0.0-missing"
            && s["currentVersion"] == "3.9"
            && s["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Degraded" && c["reason"] == "RolledBack")
    })
    .await?;

    services.delete(NAME, &DeleteParams::default()).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while services.get_opt(NAME).await?.is_some() {
        if tokio::time::Instant::now() > deadline {
            bail!("the finalizer did not release {NAME}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.send_replace(true);
    operator.await??;
    ns.cleanup().await
}
