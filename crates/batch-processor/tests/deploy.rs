//! The binary as it ships: `--version` names it, and the config file in
//! deploy/batch-processor is one it reads.

use anyhow::{Context as _, Result};
use operator_core::runtime::config::{Flags, RuntimeConfig};

#[test]
fn version_names_the_binary_not_the_shared_crate() -> Result<()> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_batch-processor-operator"))
        .arg("--version")
        .output()?;
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout)?.trim(),
        format!("batch-processor-operator {}", env!("CARGO_PKG_VERSION"))
    );
    Ok(())
}

#[test]
fn the_shipped_config_file_parses_for_this_binary() -> Result<()> {
    let path = format!(
        "{}/../../deploy/batch-processor/config.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let manifest: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).context(path)?)?;
    let file = manifest["data"]["config.yaml"]
        .as_str()
        .context("config.yaml key")?;
    let config = std::env::temp_dir().join(format!("batch-config-{}.yaml", std::process::id()));
    std::fs::write(&config, file)?;
    let flags = Flags {
        config: Some(config.clone()),
        ..Flags::default()
    };
    let env = |name: &str| (name == "POD_NAMESPACE").then(|| "payments-system".to_string());
    let resolved = RuntimeConfig::resolve(&flags, &batch_processor::BINARY, env);
    let _ = std::fs::remove_file(&config);
    let resolved = resolved?;
    assert_eq!(
        resolved.leader_election.map(|l| l.lease_name).as_deref(),
        Some("batch-processor-operator-leader")
    );
    assert!(resolved.workloads.default_resources.is_some());
    Ok(())
}
