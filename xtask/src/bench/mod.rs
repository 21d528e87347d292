//! `cargo xtask bench`: each operator run as a child process against testkit over loopback,
//! in four scenarios, reported as one markdown report and JSON under `target/bench/`:
//! - [`scale`]: the operator and its naive baseline (built from the same builders) at
//!   N = 100 and 1,000: convergence, cost against the lower bound, resync, memory, latency;
//! - [`failover`]: the leader killed, the standby taking over;
//! - [`foreign`]: 10,000 objects that are not the operator's, added to its namespace;
//! - [`admission`]: what the webhooks add to a create.
//!
//! `BENCH_ONLY=<scenario>` runs one scenario, `BENCH_OPERATORS=a,b` some operators,
//! `BENCH_SIZES=100` other sizes, `BENCH_HEAPTRACK=1` a heap profile of each operator.

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

mod admission;
mod failover;
mod foreign;
mod scale;

const SIZES: [usize; 2] = [100, 1000];
/// Both operators resync every 10 s; the steady-state window covers one full resync.
const RESYNC: Duration = Duration::from_secs(10);
const PHASE_TIMEOUT: Duration = Duration::from_secs(180);
/// Debian's heaptrack (`apt-get install heaptrack`), for BENCH_HEAPTRACK.
const HEAPTRACK_PRELOAD: &str = "/usr/lib/heaptrack/libheaptrack_preload.so";

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
    /// Makes the workload's spec change, to `target`, on the resource `name`.
    fn change(self, server: &ApiServer, name: &str, target: i64) -> Result<()> {
        let workload = self.workload();
        let resource = &self.served()?.resource;
        server.merge_patch(
            &resource.api_version(),
            &resource.plural(),
            workload.namespace,
            name,
            (workload.change.patch)(target),
        )?;
        Ok(())
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

/// The operator's configuration file in `out`: a resync every [`RESYNC`].
fn operator_config(out: &Path) -> Result<PathBuf> {
    let config = out.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "operator:\n  reconcileInterval: \"{}s\"\n",
            RESYNC.as_secs()
        ),
    )?;
    Ok(config)
}

/// Creates `n` resources of `subject` and waits until all are converged; their names.
async fn converge(server: &ApiServer, subject: Subject, n: usize) -> Result<Vec<String>> {
    let served = subject.served()?;
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let (resource, name) = subject.resource(i)?;
        server.create_from_yaml(&resource.to_string())?;
        names.push(name);
    }
    until("convergence", || all_converged(server, served, n)).await?;
    Ok(names)
}

/// Starts `flavor` of `subject` against `cluster`, resyncing every [`RESYNC`], its log beside
/// the cluster's; returns once it has listed and watches, so no clock starts before it can act.
async fn start(
    release: &Path,
    subject: Subject,
    flavor: Flavor,
    cluster: &Cluster,
) -> Result<Process> {
    let config = operator_config(&cluster.out)?;
    let log = std::fs::File::create(cluster.out.join("operator.log"))?;
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
    // BENCH_HEAPTRACK=1: the operator records every allocation with heaptrack's preload
    // library, into `operator.heaptrack.raw` beside its log (`heaptrack_interpret` reads it).
    if flavor == Flavor::Operator && std::env::var_os("BENCH_HEAPTRACK").is_some() {
        command.env("LD_PRELOAD", HEAPTRACK_PRELOAD).env(
            "DUMP_HEAPTRACK_OUTPUT",
            cluster.out.join("operator.heaptrack.raw"),
        );
    }
    let process = Process(
        command
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting the operator")?,
    );
    until("the operator's first watch", || {
        watch_requests(&cluster.server.stats()) > 0
    })
    .await?;
    Ok(process)
}

/// A cluster for one scenario: testkit on loopback with the CRDs, the subject's namespace
/// and the simulated workload controllers, and a kubeconfig for it under `out`.
struct Cluster {
    server: ApiServer,
    kubeconfig: PathBuf,
    /// Where the scenario's files go: the kubeconfig, the operators' configuration and logs.
    out: PathBuf,
    _workloads: testkit::Workloads,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Cluster {
    /// Starts the cluster of the scenario `name`, its files in `target/bench/<name>`.
    async fn start(root: &Path, name: &str, workload: &BenchWorkload) -> Result<Self> {
        let out = root.join("target/bench").join(name.replace(' ', "-"));
        std::fs::create_dir_all(&out)?;
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
            out,
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
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| SIZES.to_vec());
    // BENCH_ONLY=scale, failover, foreign or admission runs that scenario only.
    let only_scenario = std::env::var("BENCH_ONLY").ok();
    let runs = |scenario: &str| only_scenario.as_deref().is_none_or(|o| o == scenario);
    // BENCH_OPERATORS=payment-service runs one operator only.
    let only = std::env::var("BENCH_OPERATORS").ok();
    let chosen = |s: &Subject| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| p == s.package()))
    };
    let largest = sizes.iter().copied().max().unwrap_or(100);
    let (mut results, mut failovers, mut foreign) = (Vec::new(), Vec::new(), Vec::new());
    for subject in OPERATORS.iter().map(Subject).filter(chosen) {
        for &n in sizes.iter().filter(|_| runs("scale")) {
            for flavor in Flavor::of(subject) {
                eprintln!("bench: {} at N={n}", flavor.name(subject));
                results.push(scale::run(root, &release, subject, flavor, n).await?);
            }
        }
        let binary = subject.0.binary_name();
        if runs("failover") {
            eprintln!("bench: {binary} failover at N={largest}");
            failovers.push(failover::run(root, &release, subject, largest).await?);
        }
        if runs("foreign") {
            eprintln!("bench: {binary} among foreign objects at N={largest}");
            foreign.push(foreign::run(root, &release, subject, largest).await?);
        }
    }
    let admitted = OPERATORS.iter().filter(|o| chosen(&Subject(o)));
    let admission = if runs("admission") {
        admission::run(root, admitted).await?
    } else {
        Vec::new()
    };
    // A scenario that did not run has no table.
    let part = |rows: &[Value], render: fn(&[Value]) -> String| {
        if rows.is_empty() {
            String::new()
        } else {
            render(rows)
        }
    };
    let md = [
        part(&results, scale::table),
        part(&failovers, failover::table),
        part(&foreign, foreign::table),
        part(&admission, admission::table),
    ]
    .concat();
    results.extend(failovers);
    results.extend(foreign);
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
        let md = scale::table(&[]);
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
}
