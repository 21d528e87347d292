//! The binary as it ships: `--version` names it, and the config file in
//! deploy/saga-orchestrator is one it reads.

use anyhow::Result;
use operator_harness::shipped::{check_version, shipped_config};

#[test]
fn version_names_the_binary_not_the_shared_crate() -> Result<()> {
    check_version(
        env!("CARGO_BIN_EXE_saga-orchestrator-operator"),
        &saga_orchestrator::OPERATOR,
        env!("CARGO_PKG_VERSION"),
    )
}

#[test]
fn the_shipped_config_file_parses_for_this_binary() -> Result<()> {
    let resolved = shipped_config(&saga_orchestrator::OPERATOR)?;
    assert!(resolved.workloads.default_resources.is_some());
    Ok(())
}
