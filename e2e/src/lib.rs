//! The end-to-end suite's harness: the cluster the run is pointed at (or why the suite is
//! skipped), a namespace per test, the operators run as local processes authenticated as
//! their own ServiceAccounts under the RBAC deploy/ grants, and the API server's own request
//! counters.
//!
//! The suite runs only when `E2E_CLUSTER=1` is set (`cargo xtask e2e` sets it, with the real
//! control plane of `../shared/realcp` or the cluster `KUBECONFIG` names), so `cargo test`
//! never touches whatever cluster a developer's `KUBECONFIG` names.

pub mod admission;
pub mod apiserver;
pub mod dashboards;
pub mod image;
pub mod manifests;
pub mod monitoring;
pub mod operator;
pub mod prometheus;
pub mod scenario;
pub mod scrape;

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};

/// A test namespace (restricted Pod Security, as deploy/namespaces makes them), deleted with
/// everything in it by [`TestNamespace::cleanup`].
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
    /// Deletes the namespace and waits (a minute at most) until it is gone: a namespace that
    /// hangs in Terminating is a failure of the operator that holds it.
    pub async fn cleanup(self) -> Result<()> {
        let nss: Api<Namespace> = Api::all(self.client);
        nss.delete(&self.name, &DeleteParams::background()).await?;
        gone(&nss, &self.name, Duration::from_secs(60)).await
    }
}

/// Waits until the namespace `name` no longer exists.
pub async fn gone(nss: &Api<Namespace>, name: &str, limit: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match nss.get_opt(name).await? {
            None => return Ok(()),
            Some(ns) if tokio::time::Instant::now() > deadline => bail!(
                "namespace {name} still exists after {limit:?}: {:?}",
                ns.status.and_then(|s| s.conditions)
            ),
            Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Whether the suite runs: `E2E_CLUSTER=1`; otherwise prints why `test` is skipped.
pub fn enabled(test: &str) -> bool {
    let on = std::env::var("E2E_CLUSTER").as_deref() == Ok("1");
    if !on {
        eprintln!(
            "{test}: skipped (cargo xtask e2e --local runs it on the real control plane; or set E2E_CLUSTER=1 and KUBECONFIG)"
        );
    }
    on
}

/// The admin client of the cluster under test.
pub async fn admin() -> Result<kube::Client> {
    let client = kube::Client::try_default()
        .await
        .context("E2E_CLUSTER=1 but no cluster configuration was found")?;
    tokio::time::timeout(Duration::from_secs(10), client.apiserver_version())
        .await
        .context("the cluster did not answer within 10s")??;
    Ok(client)
}

/// The cluster to test against with a fresh namespace for `test`, or `None` (with the reason
/// printed) when the suite is skipped.
pub async fn cluster(test: &str) -> Result<Option<TestNamespace>> {
    if !enabled(test) {
        return Ok(None);
    }
    let client = admin().await?;
    let suffix = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() % 0xffffff)
            .unwrap_or_default()
    );
    let name = format!("e2e-{test}-{suffix}").replace('_', "-");
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {
        "name": name,
        "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        },
    }}))?;
    nss.create(&PostParams::default(), &ns).await?;
    Ok(Some(TestNamespace { client, name }))
}

/// Polls `check` every half second until it returns `Some`, for `limit` at most.
pub async fn until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = check().await? {
            return Ok(found);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{what} did not happen within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
