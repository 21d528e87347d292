//! Each operator, and its naive baseline, at N resources: convergence time and writes
//! against the lower bound, the spec change, one converged resync window, memory, and the
//! latency of one spec change while the other N−1 resync.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use crate::OPERATORS;

use super::{
    Cluster, Flavor, RESYNC, Subject, by_request, converge, cost, markdown, start, until,
    until_every,
};

const LATENCY_SAMPLES: usize = 50;
/// A baseline whose queue is full takes seconds per sample: stop sampling after this long
/// (the report says how many samples were taken).
const LATENCY_BUDGET: Duration = Duration::from_secs(40);
pub(super) async fn run(
    root: &Path,
    release: &Path,
    subject: Subject,
    flavor: Flavor,
    n: usize,
) -> Result<Value> {
    let workload = subject.workload();
    let served = subject.served()?;
    let cluster = Cluster::start(root, &format!("{}-{n}", flavor.name(subject)), workload).await?;
    let server = &cluster.server;
    let process = start(release, subject, flavor, &cluster).await?;

    server.reset_stats();
    let started = Instant::now();
    let names = converge(server, subject, n).await?;
    let converge_time = started.elapsed();
    let converge_stats = server.stats();
    let converge = cost(&converge_stats);
    let converge_breakdown = by_request(&converge_stats, n as f64, |verb| verb.is_write());

    tokio::time::sleep(Duration::from_secs(2)).await;
    server.reset_stats();
    let started = Instant::now();
    let target = workload.change.first_target;
    for name in &names {
        subject.change(server, name, target)?;
    }
    until("the spec change everywhere", || {
        names
            .iter()
            .all(|name| subject.changed(server, name, target))
            && server
                .objects(&served.resource.api_version(), &served.resource.plural())
                .iter()
                .all(|o| o["status"]["observedGeneration"] == 2)
    })
    .await?;
    let change_time = started.elapsed();
    let change = cost(&server.stats());

    tokio::time::sleep(Duration::from_secs(3)).await;
    server.reset_stats();
    tokio::time::sleep(RESYNC + Duration::from_secs(1)).await;
    let steady_stats = server.stats();
    let steady = cost(&steady_stats);
    let steady_breakdown = by_request(&steady_stats, 1.0, |_| true);
    let (rss_settled, rss_peak) = process.memory();

    let mut latencies = Vec::new();
    let sampling = Instant::now();
    for sample in 0..LATENCY_SAMPLES {
        if sampling.elapsed() > LATENCY_BUDGET {
            break;
        }
        let name = &names[(sample * 7919) % n];
        let target = workload.change.first_target + 1 + 2 * (sample % 2) as i64;
        let target = if subject.changed(server, name, target) {
            target + 1
        } else {
            target
        };
        let started = Instant::now();
        subject.change(server, name, target)?;
        until_every("one change", Duration::from_millis(1), || {
            subject.changed(server, name, target)
        })
        .await?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    drop(process);
    cluster.stop().await;

    let per = |x: u64| x as f64 / n as f64;
    Ok(json!({
        "operator": flavor.name(subject),
        "n": n,
        "convergence_seconds": converge_time.as_secs_f64(),
        "converge_reads_per_resource": per(converge.reads),
        "converge_writes_per_resource": per(converge.writes),
        "converge_event_writes_per_resource": per(converge.event_writes),
        "converge_writes_lower_bound": workload.lower_bound_converge.0,
        "converge_writes_vs_lower_bound": per(converge.writes) / workload.lower_bound_converge.0,
        "converge_writes_per_resource_by_request": converge_breakdown,
        "change_seconds": change_time.as_secs_f64(),
        "change_reads_per_resource": per(change.reads),
        "change_writes_per_resource": per(change.writes),
        "change_writes_lower_bound": workload.change.lower_bound.0,
        "change_writes_vs_lower_bound": per(change.writes) / workload.change.lower_bound.0,
        "steady_state_reads": steady.reads,
        "steady_state_writes": steady.writes + steady.event_writes,
        "steady_state_requests_by_request": steady_breakdown,
        "rss_peak_mib": rss_peak,
        "rss_settled_mib": rss_settled,
        "latency_p50_ms": percentile(&latencies, 0.5),
        "latency_p99_ms": percentile(&latencies, 0.99),
        "latency_samples": latencies.len(),
    }))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

pub(super) fn table(results: &[Value]) -> String {
    let header = [
        "operator",
        "N",
        "converge s",
        "writes/res (×min)",
        "reads/res",
        "change s",
        "change writes/res (×min)",
        "resync writes",
        "resync reads",
        "RSS peak / settled MiB",
        "p50 / p99 ms",
    ];
    let mut md = markdown(&header, results, |f, r| {
        vec![
            format!("{:.2}", f("convergence_seconds")),
            format!(
                "{:.1} ({:.2}×)",
                f("converge_writes_per_resource"),
                f("converge_writes_vs_lower_bound")
            ),
            format!("{:.1}", f("converge_reads_per_resource")),
            format!("{:.2}", f("change_seconds")),
            format!(
                "{:.1} ({:.2}×)",
                f("change_writes_per_resource"),
                f("change_writes_vs_lower_bound")
            ),
            r["steady_state_writes"].to_string(),
            r["steady_state_reads"].to_string(),
            format!("{:.0} / {:.0}", f("rss_peak_mib"), f("rss_settled_mib")),
            format!("{:.0} / {:.0}", f("latency_p50_ms"), f("latency_p99_ms")),
        ]
    });
    md.push('\n');
    for operator in OPERATORS {
        let workload = &operator.bench;
        if workload.naive.is_none() {
            md.push_str(&format!(
                "{} declares no naive baseline: only the operator is measured.\n",
                operator.package()
            ));
        }
        md.push_str(&format!(
            "Lower bound, {}: {} writes per resource to converge ({}), {} for the spec change ({}).\n",
            operator.package(),
            workload.lower_bound_converge.0,
            workload.lower_bound_converge.1,
            workload.change.lower_bound.0,
            workload.change.lower_bound.1,
        ));
    }
    md.push_str(&format!(
        "Writes exclude events (reported in the JSON). Resync columns: requests in one {}s resync window of N converged resources. Latency: spec change on one resource to its child updated, while the others resync; {LATENCY_SAMPLES} samples, or as many as fit in {}s (`latency_samples` in the JSON). Each operator's descriptor states its spec change.\n",
        RESYNC.as_secs(),
        LATENCY_BUDGET.as_secs()
    ));
    md
}
