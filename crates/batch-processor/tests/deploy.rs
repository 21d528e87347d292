//! The binary as it ships: `--version` names it, and the config file in
//! deploy/batch-processor is one it reads.

use anyhow::Result;
use operator_harness::shipped::{check_version, shipped_config};

#[test]
fn version_names_the_binary_not_the_shared_crate() -> Result<()> {
    check_version(
        env!("CARGO_BIN_EXE_batch-processor-operator"),
        &batch_processor::OPERATOR,
        env!("CARGO_PKG_VERSION"),
    )
}

#[test]
fn the_shipped_config_file_parses_for_this_binary() -> Result<()> {
    let resolved = shipped_config(&batch_processor::OPERATOR)?;
    assert!(resolved.workloads.default_resources.is_some());
    Ok(())
}
