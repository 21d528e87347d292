//! Fault tolerance: the conformance checks every operator passes (convergence under faults
//! with nothing duplicated or orphaned, a crash that leaves nothing to rewrite, a resync that
//! writes nothing, a deletion that leaves nothing behind), and what only a PaymentService
//! has: 200 services converge and then upgrade under the API server's faults — no rollout
//! judged failed, no cleanup skipped — with backoff keeping the request rate bounded.
//! Seeded, so a failure reproduces.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{CONFORMANCE, NS, has_backup};
use anyhow::Result;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use operator_harness::conformance::{converge_under_faults, cost_under_faults};
use operator_harness::until;
use payment_service::crd::PaymentService;
use serde_json::{Value, json};
use testkit::{ApiServer, Faults};

operator_harness::conformance_tests!(CONFORMANCE);

fn name(i: usize) -> String {
    format!("svc-{i:03}")
}

fn services(server: &ApiServer) -> Vec<Value> {
    server.objects("payments.io/v2", "paymentservices")
}

fn running_at(server: &ApiServer, version: &str) -> usize {
    services(server)
        .iter()
        .filter(|s| s["status"]["phase"] == "Running" && s["status"]["currentVersion"] == version)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_services_converge_and_upgrade_under_faults() -> Result<()> {
    let mut h = converge_under_faults(&CONFORMANCE, 200, 7).await?;
    let server = h.server.clone();
    // A fault-free convergence costs about 20 requests per service (finalizer, 4 to 9
    // applies, a Deployment list per pass, status, events).
    cost_under_faults(&h, 200, 90.0, "service")?;

    // Every service upgrades under the same faults; none is judged failed.
    let api: Api<PaymentService> = Api::namespaced(server.client(), NS);
    let upgrade = json!({"spec": {"version": "1.1.0", "image": "registry.example/payments:1.1.0"}});
    for i in 0..200 {
        while api
            .patch(&name(i), &PatchParams::default(), &Patch::Merge(&upgrade))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    until(
        "200 upgraded under faults",
        Duration::from_secs(120),
        || running_at(&server, "1.1.0") == 200,
    )
    .await?;
    assert!(
        services(&server)
            .iter()
            .all(|s| s["status"]["failedRollout"].is_null()),
        "no rollout was judged failed"
    );
    CONFORMANCE.assert_children_exact(&h, 200)?;

    // Deleting 50 under faults: every finalizer runs its cleanup, none is skipped. The record
    // of each cleanup is its status (events are best effort, and faults drop some).
    server.audit("payments.io/v2", "paymentservices");
    for i in 0..50 {
        loop {
            match api.delete(&name(i), &DeleteParams::default()).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 404 => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    until("50 deleted", Duration::from_secs(120), || {
        services(&server).len() == 150
    })
    .await?;
    let cleaned: BTreeSet<String> = server
        .audit_trail("payments.io/v2", "paymentservices")
        .into_iter()
        .filter(|ps| ps["status"]["cleanup"].is_object())
        .filter_map(|ps| ps["metadata"]["name"].as_str().map(String::from))
        .collect();
    for i in 0..50 {
        assert!(
            cleaned.contains(&name(i)),
            "{} left without its cleanup",
            name(i)
        );
        if has_backup(i) {
            let claim = server.object(
                "v1",
                "persistentvolumeclaims",
                NS,
                &format!("{}-backups", name(i)),
            );
            assert!(
                claim.is_some_and(|c| c["metadata"]["ownerReferences"].is_null()),
                "{}'s backups were kept",
                name(i)
            );
        }
    }
    // The deleted services' children are collected; their released claims stay.
    until("garbage collected", Duration::from_secs(30), || {
        CONFORMANCE.assert_children_exact(&h, 200).is_ok()
    })
    .await?;

    server.set_faults(Faults::default());
    h.stop_operator().await
}
