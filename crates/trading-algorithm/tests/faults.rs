//! Fault tolerance: with the API server failing, throttling, conflicting, slow and cutting
//! watches, 200 TradingAlgorithms still converge — no child duplicated or orphaned, no
//! finalizer skipped, no panic — and backoff keeps the request rate bounded. A crash in the
//! middle of convergence leaves nothing a new operator has to redo. Seeded, so a failure
//! reproduces.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use operator_core::runtime::config::RuntimeConfig;
use operator_core::runtime::{self, metrics::Metrics};
use operator_core::{Backoff, ControllerSettings};
use serde_json::{Value, json};
use testkit::{ApiServer, Faults};
use trading_algorithm::crd::TradingAlgorithm;
use trading_algorithm::{Options, controllers};

const NS: &str = "trading-platform";
const CHILDREN: [(&str, &str, &str); 4] = [
    ("apps/v1", "deployments", "deployment"),
    ("v1", "configmaps", "config"),
    ("v1", "services", "service"),
    ("autoscaling/v2", "horizontalpodautoscalers", "hpa"),
];

async fn cluster() -> Result<ApiServer> {
    let server = ApiServer::new();
    let client = server.client();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &TradingAlgorithm::crd())
        .await?;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}}))?;
    Api::<Namespace>::all(client)
        .create(&PostParams::default(), &ns)
        .await?;
    server.simulate_workloads();
    Ok(server)
}

fn algorithm(i: usize) -> Result<TradingAlgorithm> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "fintech.io/v1", "kind": "TradingAlgorithm",
        "metadata": {"name": format!("algo-{i:03}"), "namespace": NS},
        "spec": {
            "marketData": {"sources": ["NYSE"], "updateFrequency": "100ms", "symbols": ["AAPL"]},
            "riskLimits": {"maxPositionSize": 100000, "dailyLossLimit": 50000},
            "scalingPolicy": {"minReplicas": 1 + i % 3, "maxReplicas": 5, "scaleUpPolicy": "moderate"},
            "tradingStrategy": {"algorithm": "momentum", "parameters": {"lookbackPeriod": "5m"}}
        }
    }))?)
}

async fn create(server: &ApiServer, count: usize) -> Result<()> {
    let api: Api<TradingAlgorithm> = Api::namespaced(server.client(), NS);
    for i in 0..count {
        api.create(&PostParams::default(), &algorithm(i)?).await?;
    }
    Ok(())
}

/// Runs an operator until the returned sender says stop (or the task is aborted).
fn operator(server: &ApiServer) -> runtime::Background {
    let config = RuntimeConfig::standalone(ControllerSettings {
        resync: Duration::from_secs(5),
        concurrency: 8,
        backoff: Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_secs(2),
            jitter: 0.2,
        },
        namespace: None,
    });
    let options = Options {
        stop_timeout: Duration::from_secs(5),
        ..Options::default()
    };
    runtime::spawn(server.client(), config, Metrics::new(), move |rt| {
        controllers(rt, options)
    })
}

fn algorithms(server: &ApiServer) -> Vec<Value> {
    server.objects("fintech.io/v1", "tradingalgorithms")
}

fn active(server: &ApiServer) -> usize {
    algorithms(server)
        .iter()
        .filter(|a| a["status"]["phase"] == "Active")
        .count()
}

async fn until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{what} did not happen within {limit:?}")
}

/// Every child belongs to an algorithm that exists, and each algorithm has exactly its four.
fn assert_children_consistent(server: &ApiServer) {
    let owners: BTreeMap<String, String> = algorithms(server)
        .iter()
        .map(|a| {
            (
                a["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                a["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    for (api_version, plural, suffix) in CHILDREN {
        let children: Vec<Value> = server
            .objects(api_version, plural)
            .into_iter()
            .filter(|c| {
                c["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "trading-operator"
            })
            .collect();
        for child in &children {
            let owner = child["metadata"]["ownerReferences"][0]["uid"]
                .as_str()
                .unwrap_or_default();
            let name = owners.get(owner);
            assert!(
                name.is_some(),
                "orphaned {plural}: {}",
                child["metadata"]["name"]
            );
            assert_eq!(
                child["metadata"]["name"].as_str().map(String::from),
                name.map(|n| format!("{n}-{suffix}"))
            );
        }
        assert_eq!(children.len(), owners.len(), "one {suffix} per algorithm");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_algorithms_converge_under_faults() -> Result<()> {
    let server = cluster().await?;
    create(&server, 200).await?;
    server.reset_stats();
    server.set_faults(Faults::chaos(42));
    let (stop, task) = operator(&server);
    until("200 Active under faults", Duration::from_secs(120), || {
        active(&server) == 200
    })
    .await?;
    assert_children_consistent(&server);

    // Backoff keeps the cost bounded: a fault-free convergence costs about 10 requests per
    // algorithm (finalizer, 4 applies, a Deployment read, status, events).
    let stats = server.stats();
    let per_algorithm = stats.total() as f64 / 200.0;
    assert!(
        per_algorithm < 60.0,
        "{per_algorithm:.1} requests per algorithm under faults: {stats:?}"
    );
    let faulted: u64 = stats.by.values().map(|c| c.faulted).sum();
    eprintln!(
        "under faults: {per_algorithm:.1} requests per algorithm, {faulted} faulted, {} writes",
        stats.writes()
    );
    assert!(faulted > 100, "the faults did fire ({faulted})");

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
        algorithms(&server).len() == 150
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
    assert_children_consistent(&server);

    server.set_faults(Faults::default());
    stop.send_replace(true);
    task.await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_convergence_leaves_nothing_to_redo() -> Result<()> {
    let server = cluster().await?;
    create(&server, 100).await?;
    let (_, first) = operator(&server);
    until("some Active", Duration::from_secs(60), || {
        active(&server) >= 30
    })
    .await?;
    // The crash: the operator's whole runtime goes, mid-flight.
    first.abort();
    let _ = first.await;
    let converged_before: BTreeMap<String, String> = CHILDREN
        .iter()
        .flat_map(|(v, p, _)| server.objects(v, p))
        .filter(|c| c["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "trading-operator")
        .map(|c| {
            (
                format!("{}/{}", c["kind"], c["metadata"]["name"]),
                c["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();

    let (stop, second) = operator(&server);
    until("all Active after restart", Duration::from_secs(60), || {
        active(&server) == 100
    })
    .await?;
    assert_children_consistent(&server);

    // What the first operator had already applied was not written again (Deployments aside:
    // the simulated autoscaler and status writers touch those).
    let rewritten: Vec<String> = CHILDREN
        .iter()
        .filter(|(_, p, _)| *p != "deployments" && *p != "horizontalpodautoscalers")
        .flat_map(|(v, p, _)| server.objects(v, p))
        .filter_map(|c| {
            let key = format!("{}/{}", c["kind"], c["metadata"]["name"]);
            let before = converged_before.get(&key)?;
            (c["metadata"]["resourceVersion"].as_str() != Some(before.as_str())).then_some(key)
        })
        .collect();
    assert!(
        rewritten.is_empty(),
        "rewritten after restart: {rewritten:?}"
    );
    stop.send_replace(true);
    second.await??;
    Ok(())
}
