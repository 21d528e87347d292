//! The binary as it ships: `--version` names it.

use anyhow::Result;

#[test]
fn version_names_the_binary_not_the_shared_crate() -> Result<()> {
    operator_harness::shipped::check_version(
        env!("CARGO_BIN_EXE_trading-operator"),
        &trading_algorithm::OPERATOR,
        env!("CARGO_PKG_VERSION"),
    )
}
