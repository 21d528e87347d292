//! What is not ours does not cost us: N converged resources, then 10,000 objects no operator
//! owns (ConfigMaps, Secrets and Pods, a third each, with a kibibyte of data apiece) and
//! 1,000 Events in the namespace the operator watches. Reports the operator's resident
//! memory and its requests over one window before the foreign objects and one after: an
//! operator that watches only what it owns grows by neither.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use testkit::ApiServer;

use super::{self as bench, Cluster, Flavor, Process, RESYNC, Subject};

/// Unrelated ConfigMaps, Secrets and Pods, together.
const FOREIGN: usize = 10_000;
const EVENTS: usize = 1_000;
/// A window: two full resync intervals, so every resource resyncs as often in each window
/// whatever the phase of its resync, and the watches have long delivered what changed.
const WINDOW: Duration = Duration::from_secs(2 * RESYNC.as_secs());

/// One operator's figures at `n` resources.
pub(super) async fn run(root: &Path, release: &Path, subject: Subject, n: usize) -> Result<Value> {
    let workload = subject.workload();
    let binary = subject.0.binary_name();
    let cluster = Cluster::start(root, &format!("{binary}-foreign-{n}"), workload).await?;
    let server = &cluster.server;
    let process = bench::start(release, subject, Flavor::Operator, &cluster).await?;
    bench::converge(server, subject, n).await?;
    // The last status writes of convergence land before the first window opens.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let before = window(server, &process, |_| Ok(())).await?;
    let after = window(server, &process, |server| {
        create_foreign(server, workload.namespace)
    })
    .await?;
    drop(process);
    cluster.stop().await;
    Ok(json!({
        "operator": binary,
        "n": n,
        "foreign_objects": FOREIGN,
        "foreign_events": EVENTS,
        "rss_before_mib": before.rss_mib,
        "rss_after_mib": after.rss_mib,
        "rss_growth_mib": after.rss_mib - before.rss_mib,
        "requests_before": before.requests,
        "requests_after": after.requests,
        "requests_growth": after.requests as i64 - before.requests as i64,
        "requests_before_by_request": before.by_request,
        "requests_after_by_request": after.by_request,
    }))
}

/// What one window cost the operator.
struct Window {
    /// Every request but watches (reads, writes, events).
    requests: u64,
    by_request: serde_json::Map<String, Value>,
    /// Resident memory at the window's end.
    rss_mib: f64,
}

/// Counts from zero, runs `during`, and measures after [`WINDOW`].
async fn window(
    server: &ApiServer,
    process: &Process,
    during: impl FnOnce(&ApiServer) -> Result<()>,
) -> Result<Window> {
    server.reset_stats();
    during(server)?;
    tokio::time::sleep(WINDOW).await;
    let stats = server.stats();
    let cost = bench::cost(&stats);
    Ok(Window {
        requests: cost.reads + cost.writes + cost.event_writes,
        by_request: bench::by_request(&stats, 1.0, |_| true),
        rss_mib: process.memory().0,
    })
}

/// Another team's objects: no label, owner or name of the operator's.
fn create_foreign(server: &ApiServer, namespace: &str) -> Result<()> {
    let kibibyte = "x".repeat(1024);
    // base64 of 768 bytes: a kibibyte in the Secret's data.
    let encoded = "eHh4".repeat(256);
    let labels = json!({"app.kubernetes.io/name": "ledger", "team": "someone-else"});
    for i in 0..FOREIGN {
        let metadata = |kind: &str| json!({"name": format!("ledger-{kind}-{i:05}"), "namespace": namespace, "labels": labels});
        let object = match i % 3 {
            0 => json!({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata("config"),
                "data": {"settings.yaml": kibibyte},
            }),
            1 => json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": metadata("secret"),
                "type": "Opaque", "data": {"token": encoded},
            }),
            _ => json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": metadata("pod"),
                "spec": {"containers": [{"name": "ledger", "image": "registry.example/ledger:1", "args": [kibibyte]}]},
            }),
        };
        server.create_from_yaml(&object.to_string())?;
    }
    for i in 0..EVENTS {
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("ledger-pod-{i:05}.pulled"), "namespace": namespace},
            "involvedObject": {"kind": "Pod", "name": format!("ledger-pod-{i:05}"), "namespace": namespace},
            "reason": "Pulled", "type": "Normal", "message": kibibyte,
        });
        server.create_from_yaml(&event.to_string())?;
    }
    Ok(())
}

/// The report's table: a row per operator.
pub(super) fn table(results: &[Value]) -> String {
    let header = [
        "foreign objects",
        "N",
        "RSS before MiB",
        "RSS after MiB",
        "RSS growth MiB",
        "requests before",
        "requests after",
    ];
    let md = bench::markdown(&header, results, |f, _| {
        vec![
            format!("{:.1}", f("rss_before_mib")),
            format!("{:.1}", f("rss_after_mib")),
            format!("{:+.1}", f("rss_growth_mib")),
            format!("{}", f("requests_before")),
            format!("{}", f("requests_after")),
        ]
    });
    format!(
        "\n{md}\nForeign objects: {FOREIGN} ConfigMaps, Secrets and Pods (a third each, 1 KiB of data apiece) and {EVENTS} Events, none the operator's, created in its namespace at the start of the second of two {}s windows (two resync intervals each). Requests exclude watches; `report.json` splits them by verb and resource.\n",
        WINDOW.as_secs()
    )
}
