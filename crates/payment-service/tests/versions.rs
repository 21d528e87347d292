//! Both versions of PaymentService on testkit, served through the operator's conversion
//! webhook as a cluster serves them: the seed's v1 object is stored as v2 and read back in
//! either version, by a client and by `kubectl get`, with v1's deprecation warning.

use std::process::Command;

use anyhow::{Context as _, Result};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use operator_harness::admission::AdmissionHarness;
use operator_harness::sample_of_kind;
use payment_service::crd::v1::{DEPRECATION, WEBHOOK_NAMESPACE, WEBHOOK_SERVICE, crd};
use serde_json::{Value, json};

fn api(client: &kube::Client, version: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("payments.io", version, "PaymentService");
    Api::namespaced_with(
        client.clone(),
        "payments",
        &ApiResource::from_gvk_with_plural(&gvk, "paymentservices"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_written_in_v1_is_stored_in_v2_and_read_in_both() -> Result<()> {
    let server = testkit::ApiServer::new();
    let webhook = AdmissionHarness::start_as(
        payment_service::OPERATOR.admission,
        payment_service::OPERATOR.resources,
        server.client(),
        &[&format!("{WEBHOOK_SERVICE}.{WEBHOOK_NAMESPACE}.svc")],
    )
    .await?;
    server.route_service(WEBHOOK_NAMESPACE, WEBHOOK_SERVICE, 443, webhook.address());
    let mut definition = serde_json::to_value(crd())?;
    definition["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] = webhook.ca_bundle();
    server.create_from_yaml(&serde_json::to_string(&definition)?)?;
    server.create_from_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: payments}\n")?;

    let seed = sample_of_kind("payment-initiation-service", "PaymentService")?;
    let client = server.client();

    // A v1 value the conversion cannot carry fails the conversion, before any schema sees
    // it: the real API server answers 500 with the webhook's message (e2e/tests/admission.rs
    // holds it to that), and testkit does the same. The message names the field and what it
    // accepts.
    let mut bad = seed.clone();
    bad["spec"]["deploymentStrategy"]["type"] = json!("Sideways");
    let refused = api(&client, "v1")
        .create(&PostParams::default(), &serde_json::from_value(bad)?)
        .await;
    let Err(kube::Error::Api(status)) = refused else {
        anyhow::bail!("expected a refusal, got {refused:?}");
    };
    assert_eq!(status.code, 500, "{status:?}");
    assert!(
        status.message.contains("spec.deploymentStrategy")
            && status
                .message
                .contains("expected one of `RollingUpdate`, `BlueGreen`, `Canary`"),
        "{}",
        status.message
    );

    api(&client, "v1")
        .create(
            &PostParams::default(),
            &serde_json::from_value(seed.clone())?,
        )
        .await
        .context("creating the seed in v1")?;

    let stored = server
        .object(
            "payments.io/v2",
            "paymentservices",
            "payments",
            "payment-initiation-service",
        )
        .context("stored")?;
    assert_eq!(
        stored["apiVersion"], "payments.io/v2",
        "kept in the storage version"
    );
    assert_eq!(
        stored["spec"]["deploymentStrategy"],
        json!({"blueGreen": {}})
    );

    let v1 = serde_json::to_value(api(&client, "v1").get("payment-initiation-service").await?)?;
    assert_eq!(
        v1["spec"]["deploymentStrategy"],
        seed["spec"]["deploymentStrategy"]
    );
    assert!(
        v1["metadata"].get("annotations").is_none(),
        "{}",
        v1["metadata"]
    );

    // kubectl, against the same server on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(testkit::loopback::serve(server.clone(), listener, async {
        let _ = stopped.await;
    }));
    let kubeconfig =
        std::env::temp_dir().join(format!("versions-{}.kubeconfig", std::process::id()));
    std::fs::write(&kubeconfig, testkit::loopback::kubeconfig(address))?;
    let config = kubeconfig.clone();
    let kubectl = move |version: &str| -> Result<(Value, String)> {
        let output = Command::new("kubectl")
            .env("KUBECONFIG", &config)
            .args([
                "get",
                &format!("paymentservices.{version}.payments.io"),
                "-n",
                "payments",
                "payment-initiation-service",
                "-o",
                "json",
            ])
            .output()
            .context("running kubectl")?;
        anyhow::ensure!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok((
            serde_json::from_slice(&output.stdout)?,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    };
    let (v1, warnings) = tokio::task::spawn_blocking({
        let kubectl = kubectl.clone();
        move || kubectl("v1")
    })
    .await??;
    assert_eq!(v1["apiVersion"], "payments.io/v1");
    assert_eq!(
        v1["spec"]["deploymentStrategy"],
        seed["spec"]["deploymentStrategy"]
    );
    assert!(
        warnings.contains(DEPRECATION),
        "kubectl shows the deprecation: {warnings}"
    );
    let (v2, warnings) = tokio::task::spawn_blocking(move || kubectl("v2")).await??;
    assert_eq!(v2["apiVersion"], "payments.io/v2");
    assert_eq!(v2["spec"]["deploymentStrategy"], json!({"blueGreen": {}}));
    assert!(warnings.is_empty(), "{warnings}");

    let _ = stop.send(());
    serving.await??;
    let _ = std::fs::remove_file(&kubeconfig);
    Ok(())
}
