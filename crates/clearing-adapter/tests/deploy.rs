//! The binary as it ships: `--version` names it, and the config file in
//! deploy/clearing-adapter is one it reads.

use anyhow::Result;
use operator_harness::shipped::{check_version, shipped_config};

#[test]
fn version_names_the_binary_not_the_shared_crate() -> Result<()> {
    check_version(
        env!("CARGO_BIN_EXE_clearing-adapter-operator"),
        &clearing_adapter::OPERATOR,
        env!("CARGO_PKG_VERSION"),
    )
}

#[test]
fn the_shipped_config_file_parses_for_this_binary() -> Result<()> {
    let resolved = shipped_config(&clearing_adapter::OPERATOR)?;
    let settings = resolved.own.get::<clearing_adapter::Settings>();
    assert!(
        settings.partner_health_checks,
        "checks are on in production"
    );
    assert_eq!(
        settings.image.as_deref(),
        Some("ghcr.io/payments-engine/clearing-adapter:0.1.0")
    );
    Ok(())
}
