//! Helpers for the end-to-end suite: find the cluster the run is pointed at, or say why the
//! suite is skipped, and give each test a namespace of its own.
//!
//! The suite runs only when `E2E_CLUSTER=1` is set (`e2e/run.sh` sets it after creating a kind
//! cluster), so `cargo test` never touches whatever cluster a developer's `KUBECONFIG` names.

pub mod manifests;

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};

/// A test namespace, deleted (with everything in it) when the test calls [`TestNamespace::cleanup`].
pub struct TestNamespace {
    pub client: kube::Client,
    pub name: String,
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestNamespace {
    pub async fn cleanup(self) -> Result<()> {
        let nss: Api<Namespace> = Api::all(self.client);
        nss.delete(&self.name, &DeleteParams::background()).await?;
        Ok(())
    }
}

/// The cluster to test against, or `None` (with the reason printed) when the suite is skipped.
pub async fn cluster(test: &str) -> Result<Option<TestNamespace>> {
    if std::env::var("E2E_CLUSTER").as_deref() != Ok("1") {
        eprintln!("{test}: skipped (set E2E_CLUSTER=1 and KUBECONFIG, or run e2e/run.sh)");
        return Ok(None);
    }
    let client = kube::Client::try_default()
        .await
        .context("E2E_CLUSTER=1 but no cluster configuration was found")?;
    tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
        .await
        .context("the cluster did not answer within 10s")??;
    let name = format!("e2e-{test}-{}", std::process::id()).replace('_', "-");
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    nss.create(&PostParams::default(), &ns).await?;
    Ok(Some(TestNamespace { client, name }))
}
