//! The kubectl plugin as a release ships it (`cargo xtask release`: its archive and krew
//! manifest in dist/, `E2E_PLUGIN_ARCHIVE` names the archive), installed as README says, by
//! copying the binary onto PATH: kubectl runs it as `kubectl payments` against the real API
//! server, and completes through the script `kubectl payments completion` prints.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use e2e::operator::{Operator, work_dir};
use e2e::scenario::{BATCH_PROCESSOR, is_true};
use serde_json::{Value, json};

const OPERATOR: Operator = Operator::of(&batch_processor::OPERATOR);
const SEED: &str = "daily-payment-batch";

/// What `command` printed; an error with what it said if it failed.
fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Unpacks the archive into `dir` after checking it against its krew manifest (beside it).
fn install(archive: &Path, dir: &Path) -> Result<PathBuf> {
    let manifest: Value = serde_yaml::from_str(&std::fs::read_to_string(
        archive.with_file_name("payments.yaml"),
    )?)?;
    let platform = &manifest["spec"]["platforms"][0];
    let file_name = archive
        .file_name()
        .context("archive name")?
        .to_string_lossy();
    ensure!(
        platform["uri"]
            .as_str()
            .is_some_and(|uri| uri.ends_with(&format!("/{file_name}"))),
        "the manifest downloads another archive: {platform}"
    );
    let digest = output(Command::new("sha256sum").arg(archive))?;
    ensure!(
        platform["sha256"].as_str() == digest.split_whitespace().next(),
        "the manifest's sha256 {} is not the archive's {digest}",
        platform["sha256"]
    );
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    output(
        Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(dir),
    )?;
    ensure!(
        dir.join("LICENSE").exists(),
        "the archive holds the LICENSE"
    );
    Ok(dir.join("kubectl-payments"))
}

#[tokio::test]
async fn the_released_plugin_runs_from_path_as_kubectl_payments_and_completes() -> Result<()> {
    let Ok(archive) = std::env::var("E2E_PLUGIN_ARCHIVE") else {
        eprintln!(
            "plugin: skipped (cargo xtask e2e sets E2E_PLUGIN_ARCHIVE to the release's archive)"
        );
        return Ok(());
    };
    let Some(ns) = e2e::cluster("plugin").await? else {
        return Ok(());
    };
    ns.grant(&OPERATOR).await?;
    let operator = ns.start_operator(&OPERATOR, "a", true).await?;
    ns.create_sample(BATCH_PROCESSOR, SEED, |b| {
        b["spec"]["parallelism"] = json!(1);
    })
    .await?;
    ns.status_until(
        BATCH_PROCESSOR,
        SEED,
        "Ready",
        Duration::from_secs(60),
        |s| is_true(s, "Ready"),
    )
    .await?;

    let bin = work_dir().join(&ns.name).join("bin");
    let plugin = install(Path::new(&archive), &bin)?;
    ensure!(plugin.exists(), "the archive holds kubectl-payments");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kubectl = |args: &[&str]| {
        let mut command = Command::new("kubectl");
        command.env("PATH", &path).args(args);
        command
    };

    // kubectl finds the copied binary as a plugin, and it reads the real API server.
    let plugins = output(&mut kubectl(&["plugin", "list"]))?;
    ensure!(plugins.contains("kubectl-payments"), "{plugins}");
    let table = output(&mut kubectl(&["payments", "status", "-n", &ns.name]))?;
    let row = table
        .lines()
        .find(|l| l.contains(SEED))
        .with_context(|| format!("no row for {SEED}:\n{table}"))?;
    ensure!(
        row.contains("BatchProcessor") && row.contains("True"),
        "{table}"
    );

    // The completion script, saved beside it as README says, completes names of the cluster.
    let script = bin.join("kubectl_complete-payments");
    std::fs::write(&script, output(&mut kubectl(&["payments", "completion"]))?)?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let names = output(&mut kubectl(&[
        "__complete",
        "payments",
        "-n",
        &ns.name,
        "run-now",
        "bp/",
    ]))?;
    ensure!(names.contains(&format!("bp/{SEED}\n")), "{names}");

    drop(operator);
    ns.cleanup().await
}
