//! Fault tolerance: the conformance checks every operator passes (convergence under faults
//! with nothing duplicated or orphaned, a crash that leaves nothing to rewrite, a resync that
//! writes nothing, a deletion that leaves nothing behind), and what only a TradingAlgorithm
//! has: 200 algorithms converge under the API server's faults with backoff keeping the
//! request rate bounded, and every one deleted under faults is stopped gracefully first.
//! Seeded, so a failure reproduces.

use std::time::Duration;

use crate::common::{CONFORMANCE, NS};
use anyhow::Result;
use kube::api::{Api, DeleteParams};
use operator_harness::conformance::{converge_under_faults, cost_under_faults};
use operator_harness::until;
use testkit::Faults;
use trading_algorithm::crd::TradingAlgorithm;

operator_harness::conformance_tests!(CONFORMANCE);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_algorithms_converge_and_stop_gracefully_under_faults() -> Result<()> {
    let mut h = converge_under_faults(&CONFORMANCE, 200, 42).await?;
    let server = h.server.clone();
    // A fault-free convergence costs about 10 requests per algorithm (finalizer, 5 applies,
    // a Deployment read, status, events).
    cost_under_faults(&h, 200, 60.0, "algorithm")?;

    // Deleting 50 under faults: every finalizer runs its graceful stop, none is skipped. Its
    // record is the final report in status (events are best effort, and faults drop some).
    server.audit("fintech.io/v1", "tradingalgorithms");
    let api: Api<TradingAlgorithm> = Api::namespaced(server.client(), NS);
    for i in 0..50 {
        let name = format!("algo-{i:03}");
        loop {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 404 => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    until("50 deleted", Duration::from_secs(120), || {
        server.objects("fintech.io/v1", "tradingalgorithms").len() == 150
    })
    .await?;
    let stopped: Vec<String> = server
        .audit_trail("fintech.io/v1", "tradingalgorithms")
        .into_iter()
        .filter(|ta| ta["status"]["finalReport"].is_object())
        .filter_map(|ta| ta["metadata"]["name"].as_str().map(String::from))
        .collect();
    for i in 0..50 {
        assert!(
            stopped.contains(&format!("algo-{i:03}")),
            "algo-{i:03} left without its graceful stop"
        );
    }
    until("garbage collected", Duration::from_secs(30), || {
        CONFORMANCE.assert_children_exact(&h, 200).is_ok()
    })
    .await?;

    server.set_faults(Faults::default());
    h.stop_operator().await
}
