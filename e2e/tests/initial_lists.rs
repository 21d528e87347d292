//! An operator starting against a namespace of 5,000 of its resources on a real API server:
//! its cache fills from a list in pages of 500 (no response holds them all) and it is ready
//! soon after. It stands by here (another replica holds its Lease), so it writes nothing,
//! and the namespace goes with its objects. Skipped without `E2E_CLUSTER=1`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use e2e::operator::Operator;
use e2e::scenario::TRADING_ALGORITHM;
use e2e::until;
use futures::{StreamExt, TryStreamExt};
use kube::api::PostParams;
use serde_json::json;

const OPERATOR: Operator = Operator::of(&trading_algorithm::OPERATOR);
const COUNT: usize = 5_000;
/// Objects per page of kube's watcher (`watcher::Config::page_size`, its default).
const PAGE: usize = 500;

/// The API server's count of `verb` requests for TradingAlgorithms, from its own metrics.
async fn requests(client: &kube::Client, verb: &str) -> Result<f64> {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| l.contains("resource=\"tradingalgorithms\""))
        .filter(|l| l.contains(&format!("verb=\"{verb}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

#[tokio::test]
async fn an_operator_starts_against_5000_resources_listing_them_in_pages() -> Result<()> {
    let Some(ns) = e2e::cluster("five-thousand").await? else {
        return Ok(());
    };
    ns.grant(&OPERATOR).await?;
    let sample = ns.sample_json(TRADING_ALGORITHM, "momentum-trader-prod", |_| {})?;
    let algorithms = ns.api(TRADING_ALGORITHM);
    futures::stream::iter(0..COUNT)
        .map(|i| {
            let mut algorithm = sample.clone();
            algorithm["metadata"] = json!({"name": format!("algo-{i:04}"), "namespace": ns.name});
            let algorithms = algorithms.clone();
            async move {
                algorithms
                    .create(&PostParams::default(), &serde_json::from_value(algorithm)?)
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .context("creating the algorithms")?;

    let lists_before = requests(&ns.client, "LIST").await?;
    ns.hold_lease(&OPERATOR, "another-replica").await?;
    let started = Instant::now();
    let standby = ns.start_operator(&OPERATOR, "standby", true).await?;
    let cached = [format!("objects={COUNT}"), format!("\"objects\":{COUNT}")];
    until("the caches synced", Duration::from_secs(120), || async {
        let log = std::fs::read_to_string(&standby.log)?;
        Ok(log
            .lines()
            .any(|l| l.contains("caches synced") && cached.iter().any(|c| l.contains(c.as_str())))
            .then_some(()))
    })
    .await?;
    let synced = started.elapsed();
    let pages = requests(&ns.client, "LIST").await? - lists_before;
    ensure!(
        pages >= (COUNT / PAGE) as f64,
        "the operator listed {COUNT} TradingAlgorithms in {pages} requests: not in pages of {PAGE}"
    );
    standby.assert_no_rbac_denials()?;
    println!(
        "trading-algorithm: {COUNT} resources cached in {pages} pages {:.1}s after start; peak RSS {} MiB ({})",
        synced.as_secs_f64(),
        standby.peak_memory_kib().unwrap_or_default() / 1024,
        e2e::image::which_build()
    );
    drop(standby);
    ns.cleanup().await
}
