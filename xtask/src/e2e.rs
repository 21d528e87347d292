//! `cargo xtask e2e [--local]`: the end-to-end suite against a real API server.
//!
//! With `--local` it starts the real control plane of `../shared/realcp` (or the folder
//! `REALCP_DIR` names) from an empty etcd, and stops it afterwards, pass or fail. Without it,
//! it runs against the cluster `KUBECONFIG` names, and only with `E2E_CLUSTER=1` (so a
//! developer's cluster is never touched by accident). Either way it builds the release
//! (`cargo xtask release`: the images, and `dist/install.yaml` pinning them by digest),
//! installs it as a user would (`kubectl apply --server-side -f dist/install.yaml`, then
//! waits for the CRDs and the five operators' Deployments), hands the test of the kubectl
//! plugin the release's archive of it (`E2E_PLUGIN_ARCHIVE`), unpacks the images (every
//! operator runs from its image, see `e2e::image`), and runs `cargo test -p e2e` one test at a time (the writes a converged
//! operator makes are read from the API server's own counters, which other tests would move).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

fn run(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// The realcp script: `$REALCP_DIR/realcp`, or `../shared/realcp/realcp` beside the workspace.
fn realcp(root: &Path) -> PathBuf {
    std::env::var("REALCP_DIR")
        .map_or_else(|_| root.join("../shared/realcp"), PathBuf::from)
        .join("realcp")
}

/// What each Job pod of the stand-in kubelet reports as its termination message: one batch
/// worker's counts (the batch-processor scenarios read it from the same variable).
const WORKER_REPORT: &str =
    r#"{"paymentsProcessed": 100, "paymentsSucceeded": 99, "paymentsFailed": 1}"#;

/// Starts the real control plane from an empty etcd; returns its admin kubeconfig.
fn start_realcp(script: &Path) -> Result<PathBuf> {
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(script)
        .args(["start", "--fresh", "--kubelet"])
        .env("SIM_JOB_TERMINATION_MESSAGE", WORKER_REPORT)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("starting {}", script.display()))?;
    if !output.status.success() {
        bail!("{} start failed ({})", script.display(), output.status);
    }
    let path = String::from_utf8(output.stdout)?
        .lines()
        .last()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .context("realcp start printed no kubeconfig path")?
        .to_string();
    println!(
        "real control plane up in {:.0}s; KUBECONFIG={path}",
        started.elapsed().as_secs_f64()
    );
    Ok(PathBuf::from(path))
}

/// Installs the release as a user would: `kubectl apply --server-side -f dist/install.yaml`,
/// then waits for the CRDs to be established and for the five operators' Deployments (pods
/// the stand-in kubelet makes Ready; nothing runs in them on the real control plane) to be
/// Available.
fn install(install_yaml: &Path, kubeconfig: &Path) -> Result<()> {
    let kubectl = |args: &[&str]| {
        let mut command = Command::new("kubectl");
        command.env("KUBECONFIG", kubeconfig).args(args);
        command
    };
    let file = install_yaml.to_string_lossy();
    run(
        &mut kubectl(&["apply", "--server-side", "-f", &file]),
        "kubectl apply --server-side -f dist/install.yaml",
    )?;
    run(
        &mut kubectl(&[
            "wait",
            "--for",
            "condition=Established",
            "--timeout",
            "60s",
            "crd",
            "--all",
        ]),
        "waiting for the CRDs to be established",
    )?;
    for operator in crate::OPERATORS {
        let deployment = format!("deployment/{}-controller", operator.binary_name());
        let namespace = operator_namespace(install_yaml, operator.binary_name())?;
        run(
            &mut kubectl(&[
                "wait",
                "--for",
                "condition=Available",
                "--timeout",
                "120s",
                "-n",
                &namespace,
                &deployment,
            ]),
            &format!("waiting for {deployment} to be Available"),
        )?;
    }
    Ok(())
}

/// The namespace of `<binary>-controller` in the install file.
fn operator_namespace(install_yaml: &Path, binary: &str) -> Result<String> {
    let text = std::fs::read_to_string(install_yaml)?;
    let name = format!("{binary}-controller");
    for object in operator_core::manifests::documents(&text)? {
        if object["kind"] == "Deployment" && object["metadata"]["name"] == name.as_str() {
            return object["metadata"]["namespace"]
                .as_str()
                .map(String::from)
                .context("the Deployment names no namespace");
        }
    }
    bail!("{} holds no Deployment {name}", install_yaml.display())
}

fn suite(root: &Path, kubeconfig: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The release (its images built first) is what gets installed; the operators run from
    // those images; the out-of-cluster scenario runs the built binaries, as README's
    // `cargo run` does.
    let install_yaml = crate::release::run(root, &crate::images::Options::parse(&[])?)?;
    crate::images::verify::run(root)?;
    run(
        Command::new(&cargo)
            .current_dir(root)
            .args(["build", "--locked"])
            .args(crate::OPERATORS.iter().flat_map(|o| ["-p", o.package()])),
        "building the operators",
    )?;
    install(&install_yaml, kubeconfig)?;
    let plugin_archive = root
        .join(crate::release::DIST)
        .join(crate::plugin::archive_name(crate::plugin::platform()?));
    let started = Instant::now();
    let result = run(
        Command::new(&cargo)
            .current_dir(root)
            .env("E2E_CLUSTER", "1")
            .env("E2E_IMAGES", crate::images::verify::unpacked_dir(root))
            .env("E2E_PLUGIN_ARCHIVE", &plugin_archive)
            .env("SIM_JOB_TERMINATION_MESSAGE", WORKER_REPORT)
            .env("KUBECONFIG", kubeconfig)
            .args([
                "test",
                "--locked",
                "-p",
                "e2e",
                "--",
                "--test-threads=1",
                "--nocapture",
            ]),
        "the e2e suite",
    );
    println!("e2e suite: {:.0}s", started.elapsed().as_secs_f64());
    result
}

pub fn run_suite(root: &Path, local: bool) -> Result<()> {
    if !local {
        if std::env::var("E2E_CLUSTER").as_deref() != Ok("1") {
            bail!(
                "refusing to run against the cluster KUBECONFIG names without E2E_CLUSTER=1; use --local for the real control plane of ../shared/realcp"
            );
        }
        let kubeconfig = std::env::var("KUBECONFIG").map_or_else(
            |_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".kube/config"),
            PathBuf::from,
        );
        return suite(root, &kubeconfig);
    }
    let script = realcp(root);
    if !script.exists() {
        bail!(
            "{} not found: set REALCP_DIR to the realcp folder",
            script.display()
        );
    }
    let kubeconfig = start_realcp(&script)?;
    let result = suite(root, &kubeconfig);
    let stopped = run(Command::new("bash").arg(&script).arg("stop"), "realcp stop");
    result.and(stopped)
}
