//! The binary as it ships: `--version` names it.

use anyhow::Result;

#[test]
fn version_names_the_binary_not_the_shared_crate() -> Result<()> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trading-operator"))
        .arg("--version")
        .output()?;
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout)?.trim(),
        format!("trading-operator {}", env!("CARGO_PKG_VERSION"))
    );
    Ok(())
}
