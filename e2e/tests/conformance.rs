//! testkit's conformance suite on a real API server: the same cases testkit runs in-process
//! (`crates/testkit/tests/conformance.rs`), so a difference between testkit and Kubernetes
//! fails here. Skipped without `E2E_CLUSTER=1`.

use anyhow::Result;
use testkit::conformance::{self, Backend};

macro_rules! on_the_real_server {
    ($case:ident) => {
        #[tokio::test]
        async fn $case() -> Result<()> {
            let Some(ns) = e2e::cluster("conformance").await? else {
                return Ok(());
            };
            let backend = Backend {
                client: ns.client.clone(),
                namespace: ns.name.clone(),
            };
            conformance::$case(&backend).await?;
            ns.cleanup().await
        }
    };
}

testkit::conformance_cases!(on_the_real_server);
