//! Failover: two replicas elect a leader over N converged resources; the leader is killed
//! (SIGKILL, nothing released) and one spec is changed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::{Cluster, Process, Subject, converge, markdown, operator_config, until, until_every};

/// Failover: two replicas elect a leader over N converged resources; the leader is killed
/// (SIGKILL, nothing released) and one spec is changed. Reports how long the standby takes
/// to hold the lease (the lease must expire first) and, from then, to apply the change:
/// the second part is what a standby's warm caches save.
pub(super) async fn run(root: &Path, release: &Path, subject: Subject, n: usize) -> Result<Value> {
    let workload = subject.workload();
    let ns = workload.namespace;
    let binary = subject.0.binary_name();
    let cluster = Cluster::start(root, &format!("{binary}-failover-{n}"), workload).await?;
    let server = &cluster.server;
    let config = operator_config(&cluster.out)?;
    let lease = format!("{binary}-leader");
    let holder = || {
        server
            .object("coordination.k8s.io/v1", "leases", ns, &lease)
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
    };
    let mut replicas = Vec::new();
    for replica in ["a", "b"] {
        let log = std::fs::File::create(cluster.out.join(format!("{replica}.log")))?;
        let child = Command::new(release.join(binary))
            .args([
                "--leader-elect",
                "--metrics-bind-address",
                "0",
                "--health-probe-bind-address",
                "0",
                "--config",
            ])
            .arg(&config)
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("POD_NAMESPACE", ns)
            .env("POD_NAME", replica)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting replica {replica}"))?;
        replicas.push((replica, Process(child)));
    }
    until("a leader", || holder().is_some()).await?;
    let names = converge(server, subject, n).await?;
    // Let the standby's caches (if it keeps any) catch up, as in a cluster at rest.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let leader = holder().context("the lease's holder")?;
    let killed = Instant::now();
    replicas.retain(|(replica, _)| *replica != leader);
    let target = workload.change.first_target + 1;
    subject.change(server, &names[0], target)?;
    until_every("a new leader", Duration::from_millis(5), || {
        holder().is_some_and(|h| h != leader)
    })
    .await?;
    let takeover = killed.elapsed();
    until_every("the change applied", Duration::from_millis(5), || {
        subject.changed(server, &names[0], target)
    })
    .await?;
    let applied = killed.elapsed();
    drop(replicas);
    cluster.stop().await;
    Ok(json!({
        "operator": binary,
        "n": n,
        "failover_takeover_seconds": takeover.as_secs_f64(),
        "failover_first_change_after_takeover_seconds": (applied - takeover).as_secs_f64(),
        "failover_total_seconds": applied.as_secs_f64(),
    }))
}

pub(super) fn table(results: &[Value]) -> String {
    let mut md = String::from("\n");
    md += &markdown(
        &[
            "failover",
            "N",
            "lease taken over s",
            "then change applied s",
            "total s",
        ],
        results,
        |f, _| {
            vec![
                format!("{:.2}", f("failover_takeover_seconds")),
                format!("{:.2}", f("failover_first_change_after_takeover_seconds")),
                format!("{:.2}", f("failover_total_seconds")),
            ]
        },
    );
    md.push_str("Failover: the leader of two replicas is killed (SIGKILL) over N converged resources and one spec is changed; the standby takes the lease once it expires (15 s), then applies the change.\n");
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_has_a_header_a_rule_and_a_row_per_result() {
        let results = [
            json!({"operator": "x-operator", "n": 100, "failover_takeover_seconds": 15.5, "failover_first_change_after_takeover_seconds": 1.0, "failover_total_seconds": 16.5}),
        ];
        let md = table(&results);
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(
            lines,
            [
                "| failover | N | lease taken over s | then change applied s | total s |",
                "|---|---|---|---|---|",
                "| x-operator | 100 | 15.50 | 1.00 | 16.50 |",
            ]
        );
    }
}
