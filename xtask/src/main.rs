//! Project chores, run as `cargo xtask <command>`:
//!
//! - `crds [--check]`: write one YAML per CRD into `deploy/crds/` from the CRD types, each
//!   operator's webhook objects into `deploy/<package>/webhooks.yaml` (and metrics access
//!   into `metrics-access.yaml`), its cert-manager overlay into `deploy/admission/<package>/`
//!   and the Grafana dashboards into `deploy/monitoring/dashboards/`, or check that the
//!   checked-in files are current (CI runs the check).
//! - `demo [--serve]`: run the operators on the in-memory API server with the samples.
//! - `bench`: measure the operators against a naive baseline (report in `target/bench/`).
//! - `images [--registry R] [--tag T] | images --verify`: one OCI image per operator, built
//!   without a container engine; `--verify` unpacks and runs each (see `images`).
//! - `release [--registry R] [--tag T]`: the images, and `dist/install.yaml` (everything,
//!   images pinned by digest) and `dist/<package>.yaml` (see `release`).
//! - `e2e [--local]`: the end-to-end suite against a real API server (`--local`: the real
//!   control plane of `../shared/realcp`, started and stopped around the run).

mod bench;
mod crds;
mod dashboards;
mod demo;
mod demo_admission;
mod e2e;
mod images;
mod metrics_access;
mod naive;
mod plugin;
mod release;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use operator_core::OperatorDescriptor;

/// Every operator the product ships. `crds`, `demo`, `bench` and the e2e suite take them from
/// here: a new operator is wired into all of them by adding its descriptor.
pub const OPERATORS: &[OperatorDescriptor] = &[
    payment_service::OPERATOR,
    trading_algorithm::OPERATOR,
    batch_processor::OPERATOR,
    clearing_adapter::OPERATOR,
    saga_orchestrator::OPERATOR,
];

const USAGE: &str = "usage: cargo xtask crds [--check] | demo [--serve] | bench | images [--registry R] [--tag T] | images --verify | release [--registry R] [--tag T] | e2e [--local]";

fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .context("xtask lives one level below the workspace root")
}

fn run(args: &[String]) -> Result<()> {
    let root = workspace_root()?;
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["crds"] => {
            let mut written = crds::write(&root.join(crds::DIR), &crds::all())?;
            written.extend(webhooks::write(&root)?);
            for file in written {
                println!("wrote {}", file.display());
            }
            Ok(())
        }
        ["crds", "--check"] => {
            let mut stale = crds::check(&root.join(crds::DIR), &crds::all())?;
            stale.extend(webhooks::check(&root)?);
            if stale.is_empty() {
                println!("deploy/crds, the webhook overlays and the dashboards are current");
                return Ok(());
            }
            for problem in &stale {
                eprintln!("{problem}");
            }
            bail!(
                "{} generated file(s) are stale: run `cargo xtask crds` and commit deploy/",
                stale.len()
            )
        }
        ["demo"] => tokio_runtime()?.block_on(demo::run(&root, false)),
        ["demo", "--serve"] => tokio_runtime()?.block_on(demo::run(&root, true)),
        ["bench"] => bench::build_and_run(&root),
        ["images", "--verify"] => images::verify::run(&root),
        ["images", flags @ ..] => images::build(&root, &images::Options::parse(flags)?),
        ["release", flags @ ..] => release::run(&root, &images::Options::parse(flags)?).map(|_| ()),
        ["e2e"] => e2e::run_suite(&root, false),
        ["e2e", "--local"] => e2e::run_suite(&root, true),
        ["bench-run"] => tokio_runtime()?.block_on(bench::run(&root)),
        ["naive-operator", operator] => tokio_runtime()?.block_on(naive::run(operator)),
        _ => bail!("{USAGE}"),
    }
}

/// The target folder: `CARGO_TARGET_DIR`, else the workspace's `target/`.
pub fn target_dir(root: &std::path::Path) -> PathBuf {
    std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from)
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// The LICENSE file is the license every crate's manifest names (`license.workspace`).
    #[test]
    fn the_license_file_is_the_one_cargo_names() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
        let license = std::fs::read_to_string(root.join("LICENSE")).unwrap_or_default();
        assert!(manifest.contains("license = \"Apache-2.0\""));
        assert!(
            license.contains("Apache License") && license.contains("Version 2.0, January 2004"),
            "LICENSE is not the Apache License 2.0"
        );
    }
}
