//! How fast the fake is, so operator benchmarks measure the operator and not testkit:
//! a LIST of 1,000 objects and a WATCH delivering 10,000 events, through a real kube::Client.
//! Run with `cargo bench -p testkit`; prints medians of several runs.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use testkit::ApiServer;

fn configmap(name: &str) -> Result<ConfigMap> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"bench": "yes"}},
        "data": {"payload": "x".repeat(256)}
    }))?)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn list_1000() -> Result<Duration> {
    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    for i in 0..1000 {
        cms.create(&PostParams::default(), &configmap(&format!("cm-{i}"))?)
            .await?;
    }
    let mut samples = Vec::new();
    for _ in 0..9 {
        let start = Instant::now();
        let list = cms.list(&ListParams::default()).await?;
        samples.push(start.elapsed());
        anyhow::ensure!(list.items.len() == 1000, "listed {}", list.items.len());
    }
    Ok(median(samples))
}

async fn watch_10000() -> Result<Duration> {
    let server = ApiServer::with_history(20_000);
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let from = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("rv")?;
    for i in 0..10_000 {
        cms.create(&PostParams::default(), &configmap(&format!("cm-{i}"))?)
            .await?;
    }
    // Replays the 10,000 changes since `from`, as a watcher resuming after a disconnect does.
    let start = Instant::now();
    let mut events = cms.watch(&WatchParams::default(), &from).await?.boxed();
    let mut seen = 0;
    while seen < 10_000 {
        match events.try_next().await? {
            Some(WatchEvent::Added(_)) => seen += 1,
            Some(_) => {}
            None => anyhow::bail!("watch ended after {seen} events"),
        }
    }
    Ok(start.elapsed())
}

#[tokio::main]
async fn main() -> Result<()> {
    let list = list_1000().await?;
    let mut watch_samples = Vec::new();
    for _ in 0..3 {
        watch_samples.push(watch_10000().await?);
    }
    let watch = median(watch_samples);
    println!("| operation | median |");
    println!("|---|---|");
    println!(
        "| LIST 1,000 ConfigMaps | {:.1} ms |",
        list.as_secs_f64() * 1e3
    );
    println!(
        "| WATCH 10,000 events | {:.1} ms |",
        watch.as_secs_f64() * 1e3
    );
    Ok(())
}
