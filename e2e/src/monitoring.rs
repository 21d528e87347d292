//! deploy/monitoring as Prometheus reads it: each operator's PrometheusRule rendered by
//! kustomize, its rule groups checked and unit-tested by `promtool` (Debian's `prometheus`
//! package) against the operator's `alerts.test.yaml`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::manifests::{deploy_dir, render};

/// The rule groups of `deploy/monitoring/<operator>`, as a Prometheus rule file.
pub fn rule_file(operator: &str) -> Result<Value> {
    let groups: Vec<Value> = render(&format!("monitoring/{operator}"))?
        .into_iter()
        .filter(|o| o["kind"] == "PrometheusRule")
        .flat_map(|o| o["spec"]["groups"].as_array().cloned().unwrap_or_default())
        .collect();
    Ok(json!({ "groups": groups }))
}

/// Every rule of a rule file (groups flattened).
pub fn rules(file: &Value) -> impl Iterator<Item = &Value> {
    file["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
}

/// `deploy/monitoring/<operator>/alerts.test.yaml`, parsed.
pub fn unit_tests(operator: &str) -> Result<Value> {
    let path = unit_tests_path(operator);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_yaml::from_str(&text)?)
}

fn unit_tests_path(operator: &str) -> PathBuf {
    deploy_dir().join(format!("monitoring/{operator}/alerts.test.yaml"))
}

/// `promtool check rules` on the operator's rendered rules, then `promtool test rules` on its
/// `alerts.test.yaml`, in a scratch folder where the rules are the `rules.yaml` it names.
pub fn promtool_test(operator: &str) -> Result<()> {
    let promtool = debian_tool("promtool")?;
    let dir = std::env::temp_dir().join(format!("promtool-{}-{operator}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rules = serde_yaml::to_string(&rule_file(operator)?)?;
    std::fs::write(dir.join("rules.yaml"), rules)?;
    std::fs::copy(unit_tests_path(operator), dir.join("alerts.test.yaml"))?;
    let result = run(&promtool, &dir, &["check", "rules", "rules.yaml"])
        .and_then(|()| run(&promtool, &dir, &["test", "rules", "alerts.test.yaml"]));
    let _ = std::fs::remove_dir_all(&dir);
    result.with_context(|| format!("deploy/monitoring/{operator}"))
}

fn run(promtool: &Path, dir: &Path, args: &[&str]) -> Result<()> {
    let output = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()?;
    if !output.status.success() {
        bail!(
            "promtool {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// `promtool` or the `prometheus` server, installed from Debian's `prometheus` package on
/// first use where it is missing (as ../shared/realcp installs etcd), so `cargo test` needs no
/// set-up step of its own.
pub fn debian_tool(program: &str) -> Result<PathBuf> {
    if let Some(found) = on_path(program) {
        return Ok(found);
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let installed = apt(&["install", "-y", "-qq", "prometheus"])
        || (apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "prometheus"]));
    match on_path(program) {
        Some(found) if installed => Ok(found),
        _ => bail!(
            "{program} is not installed and Debian's `prometheus` package could not be installed \
             (apt-get install prometheus, as root or with sudo)"
        ),
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}
