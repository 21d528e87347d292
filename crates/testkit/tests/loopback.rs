//! The server over a real loopback socket, reached the way kubectl or an operator binary
//! reaches a cluster: through a kubeconfig.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use testkit::ApiServer;

#[tokio::test]
async fn a_client_from_the_kubeconfig_reads_writes_and_watches() -> Result<()> {
    let server = ApiServer::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(testkit::loopback::serve(server.clone(), listener, async {
        let _ = stopped.await;
    }));

    let kubeconfig = Kubeconfig::from_yaml(&testkit::loopback::kubeconfig(addr))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config)?;
    let version = client.apiserver_version().await?;
    assert_eq!(version.major, "1");

    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let mut objects = watcher(cms.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let cm: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "over-http"}}))?;
    cms.create(&PostParams::default(), &cm).await?;
    let seen = tokio::time::timeout(Duration::from_secs(10), objects.try_next())
        .await??
        .context("watch ended")?;
    assert_eq!(seen.metadata.name.as_deref(), Some("over-http"));
    assert!(
        server
            .object("v1", "configmaps", "default", "over-http")
            .is_some()
    );

    let _ = stop.send(());
    drop(objects);
    serving.await??;
    Ok(())
}

/// A protobuf body (what kubectl sends for `create secret` or `create namespace`) is answered
/// with a clear 415, not a confusing parse error or a 500.
#[tokio::test]
async fn a_protobuf_body_is_refused_with_415() -> Result<()> {
    let server = ApiServer::new();
    let request = http::Request::builder()
        .method("POST")
        .uri("/api/v1/namespaces")
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .body(b"k8s\x00\n\x0f\n\x02v1\x12\tNamespace".to_vec())?;
    let refused = server.client().request_text(request).await;
    let Err(kube::Error::Api(status)) = refused else {
        anyhow::bail!("expected a refusal, got {refused:?}");
    };
    assert_eq!(status.code, 415);
    assert!(status.message.contains("protobuf"), "{}", status.message);
    Ok(())
}
