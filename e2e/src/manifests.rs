//! deploy/ as users install it: every kustomization rendered by `kubectl kustomize` (the
//! kustomize kubectl embeds), split into objects.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The workspace's `deploy/` folder.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every folder under `deploy/` that holds a `kustomization.yaml`, relative to it, sorted;
/// kustomize Components (parts other kustomizations include, never installed alone) left out.
pub fn kustomizations() -> Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else if path.file_name().is_some_and(|n| n == "kustomization.yaml")
                && !is_component(&path)?
            {
                let rel = dir.strip_prefix(root).unwrap_or(dir);
                out.push(rel.to_string_lossy().into_owned());
            }
        }
        Ok(())
    }
    let root = deploy_dir();
    let mut found = Vec::new();
    walk(&root, &root, &mut found)?;
    found.sort();
    Ok(found)
}

fn is_component(kustomization: &Path) -> Result<bool> {
    let text = std::fs::read_to_string(kustomization)?;
    Ok(text.lines().any(|line| line.trim() == "kind: Component"))
}

/// The objects `kubectl kustomize deploy/<dir>` renders.
pub fn render(dir: &str) -> Result<Vec<Value>> {
    let path = deploy_dir().join(dir);
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        .output()
        .context("running `kubectl kustomize` (kubectl must be installed: .ci/run installs it)")?;
    if !output.status.success() {
        bail!(
            "kubectl kustomize {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse(&String::from_utf8(output.stdout)?)
}

/// Splits multi-document YAML into objects (empty documents skipped).
pub fn parse(yaml: &str) -> Result<Vec<Value>> {
    Ok(operator_core::manifests::documents(yaml)?)
}
