//! `cargo xtask bench`: each operator, and a naive baseline built from the same builders,
//! run as a child process against testkit over loopback, at N = 100 and 1,000 resources.
//! Reports convergence time, API cost against the lower bound, steady-state requests, memory
//! and spec-change latency, as a markdown table and JSON under `target/bench/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use operator_core::OperatorDescriptor;
use operator_core::descriptor::ServedResource;
use operator_core::tooling::BenchWorkload;
use serde_json::{Value, json};
use testkit::{ApiServer, RequestStats, Verb};

use crate::OPERATORS;

const SIZES: [usize; 2] = [100, 1000];
/// Both operators resync every 10 s; the steady-state window covers one full resync.
const RESYNC: Duration = Duration::from_secs(10);
const LATENCY_SAMPLES: usize = 50;
/// A baseline whose queue is full takes seconds per sample: stop sampling after this long
/// (the report says how many samples were taken).
const LATENCY_BUDGET: Duration = Duration::from_secs(40);
const PHASE_TIMEOUT: Duration = Duration::from_secs(180);

/// One operator under test, as its descriptor states it.
#[derive(Clone, Copy, Debug)]
struct Subject(&'static OperatorDescriptor);

impl Subject {
    fn package(self) -> &'static str {
        self.0.package()
    }
    fn workload(self) -> &'static BenchWorkload {
        &self.0.bench
    }
    fn served(self) -> Result<&'static ServedResource> {
        self.0
            .resources
            .first()
            .with_context(|| format!("{} serves no resource", self.0.package()))
    }
    /// The i-th custom resource, and its name.
    fn resource(self, i: usize) -> Result<(Value, String)> {
        let resource = self.workload().resource(&self.served()?.resource, i);
        let name = resource["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok((resource, name))
    }
    /// Whether the child the spec change touches shows `target`.
    fn changed(self, server: &ApiServer, name: &str, target: i64) -> bool {
        let workload = self.workload();
        let child = (workload.change.child)(name);
        server
            .object(
                child.api_version,
                child.plural,
                workload.namespace,
                &child.name,
            )
            .is_some_and(|c| (workload.change.shown)(&c, target))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Flavor {
    Operator,
    Naive,
}

impl Flavor {
    /// What runs for `subject`: the operator, and its naive baseline when it declares one.
    fn of(subject: Subject) -> Vec<Self> {
        let mut flavors = vec![Self::Operator];
        if subject.0.bench.naive.is_some() {
            flavors.push(Self::Naive);
        }
        flavors
    }

    fn name(self, subject: Subject) -> String {
        match self {
            Self::Operator => subject.0.binary_name().to_string(),
            Self::Naive => format!("naive {}", subject.package()),
        }
    }
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// Resident and peak resident memory in MiB, from /proc.
    fn memory(&self) -> (f64, f64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

/// What the operator itself did: every request but the harness's own (none: the harness
/// writes straight to the store), split into reads and writes, events apart.
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    reads: u64,
    writes: u64,
    event_writes: u64,
}

fn cost(stats: &RequestStats) -> Cost {
    let event_writes = stats.writes_to("events");
    Cost {
        reads: stats.reads() - watch_requests(stats),
        writes: stats.writes() - event_writes,
        event_writes,
    }
}

fn watch_requests(stats: &RequestStats) -> u64 {
    stats
        .by
        .iter()
        .filter(|((v, _), _)| *v == Verb::Watch)
        .map(|(_, c)| c.requests)
        .sum()
}

async fn until(what: &str, check: impl FnMut() -> bool) -> Result<Duration> {
    until_every(what, Duration::from_millis(20), check).await
}

/// Polls `check` every `period`: the latency phase polls finely, the bulk phases do not.
async fn until_every(
    what: &str,
    period: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < PHASE_TIMEOUT {
        if check() {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(period).await;
    }
    bail!("{what} did not happen within {PHASE_TIMEOUT:?}")
}

fn all_converged(server: &ApiServer, served: &ServedResource, n: usize) -> bool {
    let objects = server.objects(&served.resource.api_version(), &served.resource.plural());
    objects.len() == n && objects.iter().all(|o| served.converged.check(o))
}

/// Requests per verb and resource (those `keep` selects), divided by `per`: where a figure
/// in the table comes from.
fn by_request(
    stats: &RequestStats,
    per: f64,
    keep: impl Fn(&Verb) -> bool,
) -> serde_json::Map<String, Value> {
    stats
        .by
        .iter()
        .filter(|((verb, _), _)| keep(verb))
        .map(|((verb, resource), c)| {
            (
                format!("{verb:?} {resource}"),
                json!(c.requests as f64 / per),
            )
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

async fn scenario(
    root: &Path,
    release: &Path,
    subject: Subject,
    flavor: Flavor,
    n: usize,
) -> Result<Value> {
    let workload = subject.workload();
    let served = subject.served()?;
    let ns = workload.namespace;
    let out = root
        .join("target/bench")
        .join(format!("{}-{n}", flavor.name(subject).replace(' ', "-")));
    std::fs::create_dir_all(&out)?;
    let cluster = Cluster::start(root, &out, workload).await?;
    let server = &cluster.server;
    let kubeconfig = &cluster.kubeconfig;
    let config = out.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "operator:\n  reconcileInterval: \"{}s\"\n",
            RESYNC.as_secs()
        ),
    )?;
    let log = std::fs::File::create(out.join("operator.log"))?;
    let mut command = match flavor {
        Flavor::Operator => {
            let mut c = Command::new(release.join(subject.0.binary_name()));
            c.args([
                "--metrics-bind-address",
                "0",
                "--health-probe-bind-address",
                "0",
                "--config",
            ])
            .arg(&config);
            c
        }
        Flavor::Naive => {
            let mut c = Command::new(release.join("xtask"));
            c.args(["naive-operator", subject.package()]);
            c
        }
    };
    let process = Process(
        command
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting the operator")?,
    );
    // Let it connect and list before the clock starts.
    until("the operator's first watch", || {
        watch_requests(&server.stats()) > 0
    })
    .await?;

    let resources: Vec<(Value, String)> =
        (0..n).map(|i| subject.resource(i)).collect::<Result<_>>()?;
    let names: Vec<String> = resources.iter().map(|(_, name)| name.clone()).collect();
    server.reset_stats();
    let started = Instant::now();
    for (resource, _) in &resources {
        server.create_from_yaml(&resource.to_string())?;
    }
    until("convergence", || all_converged(server, served, n)).await?;
    let converge_time = started.elapsed();
    let converge_stats = server.stats();
    let converge = cost(&converge_stats);
    let converge_breakdown = by_request(&converge_stats, n as f64, |verb| verb.is_write());

    tokio::time::sleep(Duration::from_secs(2)).await;
    server.reset_stats();
    let started = Instant::now();
    let target = workload.change.first_target;
    for name in &names {
        server.merge_patch(
            &served.resource.api_version(),
            &served.resource.plural(),
            ns,
            name,
            (workload.change.patch)(target),
        )?;
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
        server.merge_patch(
            &served.resource.api_version(),
            &served.resource.plural(),
            ns,
            name,
            (workload.change.patch)(target),
        )?;
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

/// A cluster for one scenario: testkit on loopback with the CRDs, the subject's namespace
/// and the simulated workload controllers, and a kubeconfig for it under `out`.
struct Cluster {
    server: ApiServer,
    kubeconfig: PathBuf,
    _workloads: testkit::Workloads,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Cluster {
    async fn start(root: &Path, out: &Path, workload: &BenchWorkload) -> Result<Self> {
        let server = ApiServer::with_history(200_000);
        let workloads = server.simulate_workloads();
        server.load_manifests(&root.join("deploy/crds"))?;
        server.create_from_yaml(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {}}}\n",
            workload.namespace
        ))?;
        for object in workload.setup {
            server.create_from_yaml(object)?;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let kubeconfig = out.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            testkit::loopback::kubeconfig(listener.local_addr()?),
        )?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(testkit::loopback::serve(server.clone(), listener, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            server,
            kubeconfig,
            _workloads: workloads,
            stop: Some(stop),
            serving: Some(serving),
        })
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            let _ = serving.await;
        }
    }
}

/// Failover: two replicas elect a leader over N converged resources; the leader is killed
/// (SIGKILL, nothing released) and one spec is changed. Reports how long the standby takes
/// to hold the lease (the lease must expire first) and, from then, to apply the change:
/// the second part is what a standby's warm caches save.
async fn failover(root: &Path, release: &Path, subject: Subject, n: usize) -> Result<Value> {
    let workload = subject.workload();
    let served = subject.served()?;
    let ns = workload.namespace;
    let binary = subject.0.binary_name();
    let out = root
        .join("target/bench")
        .join(format!("{binary}-failover-{n}"));
    std::fs::create_dir_all(&out)?;
    let cluster = Cluster::start(root, &out, workload).await?;
    let server = &cluster.server;
    let config = out.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "operator:\n  reconcileInterval: \"{}s\"\n",
            RESYNC.as_secs()
        ),
    )?;
    let lease = format!("{binary}-leader");
    let holder = || {
        server
            .object("coordination.k8s.io/v1", "leases", ns, &lease)
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
    };
    let mut replicas = Vec::new();
    for replica in ["a", "b"] {
        let log = std::fs::File::create(out.join(format!("{replica}.log")))?;
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
    let resources: Vec<(Value, String)> =
        (0..n).map(|i| subject.resource(i)).collect::<Result<_>>()?;
    let names: Vec<String> = resources.iter().map(|(_, name)| name.clone()).collect();
    for (resource, _) in &resources {
        server.create_from_yaml(&resource.to_string())?;
    }
    until("convergence", || all_converged(server, served, n)).await?;
    // Let the standby's caches (if it keeps any) catch up, as in a cluster at rest.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let leader = holder().context("the lease's holder")?;
    let killed = Instant::now();
    replicas.retain(|(replica, _)| *replica != leader);
    let target = workload.change.first_target + 1;
    server.merge_patch(
        &served.resource.api_version(),
        &served.resource.plural(),
        ns,
        &names[0],
        (workload.change.patch)(target),
    )?;
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

/// A markdown table: the header, then a row per result.
fn markdown(
    header: &[&str],
    results: &[Value],
    row: impl Fn(&dyn Fn(&str) -> f64, &Value) -> Vec<String>,
) -> String {
    let mut md = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for r in results {
        let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
        let mut cells = vec![
            r["operator"].as_str().unwrap_or_default().to_string(),
            r["n"].to_string(),
        ];
        cells.extend(row(&f, r));
        md.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    md
}

fn failover_table(results: &[Value]) -> String {
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

fn table(results: &[Value]) -> String {
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

/// Builds the release binaries, then runs every scenario in a release build of xtask (so
/// the in-process API server is not what is measured).
pub fn build_and_run(root: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(root)
        .args(["build", "--release", "--quiet", "-p", "xtask"])
        .args(OPERATORS.iter().flat_map(|o| ["-p", o.package()]))
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    let release = crate::target_dir(root).join("release");
    let status = Command::new(release.join("xtask"))
        .arg("bench-run")
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("the benchmark failed");
    }
    Ok(())
}

pub async fn run(root: &Path) -> Result<()> {
    let release = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .context("xtask's directory")?;
    // BENCH_SIZES=100 runs a quick subset.
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| SIZES.to_vec());
    let mut results = Vec::new();
    let mut failovers = Vec::new();
    // BENCH_ONLY=failover runs the failover scenario only; BENCH_ONLY=admission the cost of
    // admission only.
    let failover_only = std::env::var("BENCH_ONLY").is_ok_and(|o| o == "failover");
    let admission_only = std::env::var("BENCH_ONLY").is_ok_and(|o| o == "admission");
    // BENCH_OPERATORS=payment-service runs one operator only.
    let only = std::env::var("BENCH_OPERATORS").ok();
    let chosen = |s: &Subject| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| p == s.package()))
    };
    for subject in OPERATORS
        .iter()
        .map(Subject)
        .filter(chosen)
        .filter(|_| !admission_only)
    {
        for &n in sizes.iter().filter(|_| !failover_only) {
            for flavor in Flavor::of(subject) {
                eprintln!("bench: {} at N={n}", flavor.name(subject));
                results.push(scenario(root, &release, subject, flavor, n).await?);
            }
        }
        let n = sizes.iter().copied().max().unwrap_or(100);
        eprintln!("bench: {} failover at N={n}", subject.0.binary_name());
        failovers.push(failover(root, &release, subject, n).await?);
    }
    let admission = crate::bench_admission::run(
        root,
        OPERATORS
            .iter()
            .filter(|o| chosen(&Subject(o)))
            .filter(|_| !failover_only),
    )
    .await?;
    let md =
        table(&results) + &failover_table(&failovers) + &crate::bench_admission::table(&admission);
    results.extend(failovers);
    results.extend(admission);
    let out = root.join("target/bench");
    std::fs::write(out.join("report.md"), &md)?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    println!("{md}");
    println!("written to {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_without_a_naive_baseline_is_benched_alone() {
        static ALONE: OperatorDescriptor = OperatorDescriptor {
            bench: BenchWorkload {
                naive: None,
                ..OPERATORS[0].bench
            },
            ..OPERATORS[0]
        };
        assert_eq!(
            Flavor::of(Subject(&OPERATORS[0])),
            [Flavor::Operator, Flavor::Naive]
        );
        assert_eq!(Flavor::of(Subject(&ALONE)), [Flavor::Operator]);
        let md = table(&[]);
        assert!(!md.contains("declares no naive baseline"), "{md}");
    }

    /// Every declared baseline builds children and a status from its bench resource, before
    /// its child exists and once the child reports pods.
    #[test]
    fn every_naive_baseline_builds_a_pass_from_its_bench_resource() {
        for operator in OPERATORS {
            let Some(naive) = operator.bench.naive else {
                continue;
            };
            let resource = operator.bench.resource(&operator.resources[0].resource, 7);
            let name = resource["metadata"]["name"].as_str().unwrap_or_default();
            let child = json!({
                "apiVersion": naive.observes.api_version,
                "kind": naive.observes.kind,
                "metadata": {"name": (naive.observes.name)(name), "namespace": operator.bench.namespace},
                "status": {"replicas": 2, "readyReplicas": 2},
            });
            for observed in [None, Some(&child)] {
                let pass = (naive.pass)(&resource, observed);
                let pass = pass.unwrap_or_else(|e| panic!("{}: {e}", operator.package()));
                assert!(!pass.children.is_empty(), "{}", operator.package());
                assert!(pass.status.is_object(), "{}", operator.package());
            }
        }
    }

    #[test]
    fn a_table_has_a_header_a_rule_and_a_row_per_result() {
        let results = [
            json!({"operator": "x-operator", "n": 100, "failover_takeover_seconds": 15.5, "failover_first_change_after_takeover_seconds": 1.0, "failover_total_seconds": 16.5}),
        ];
        let md = failover_table(&results);
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
