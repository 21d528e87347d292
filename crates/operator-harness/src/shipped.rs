//! The binary and its manifests as they ship: what every operator's `tests/deploy.rs` checks.

use anyhow::{Context as _, Result, ensure};
use operator_core::OperatorDescriptor;
use operator_core::runtime::config::{Flags, RuntimeConfig};

/// The operator's binary at `path` as it ships: it answers `--version` with its own name and
/// `version` ([`check_version`]), its pod is restricted ([`check_pod_security`]), and it reads the config file deploy/ gives it
/// ([`shipped_config`]), which is returned for the operator's own checks.
pub fn shipped(operator: &OperatorDescriptor, path: &str, version: &str) -> Result<RuntimeConfig> {
    check_version(path, operator, version)?;
    check_pod_security(operator)?;
    shipped_config(operator)
}

/// `deploy/<package>/deployment.yaml`'s pod is restricted, for Pod Security and OpenShift's
/// SCC alike ([`crate::pod_security::restricted_violations`]).
pub fn check_pod_security(operator: &OperatorDescriptor) -> Result<()> {
    let deployment = shipped_manifest(operator, "deployment.yaml")?;
    let violations =
        crate::pod_security::restricted_violations(&deployment["spec"]["template"]["spec"]);
    ensure!(
        violations.is_empty(),
        "deploy/{}/deployment.yaml: {violations:?}",
        operator.package()
    );
    Ok(())
}

/// `deploy/<package>/<file>`, one YAML document.
fn shipped_manifest(operator: &OperatorDescriptor, file: &str) -> Result<serde_json::Value> {
    let path = format!(
        "{}/../../deploy/{}/{file}",
        env!("CARGO_MANIFEST_DIR"),
        operator.package()
    );
    Ok(serde_yaml::from_str(
        &std::fs::read_to_string(&path).context(path.clone())?,
    )?)
}

/// The binary at `path` answers `--version` with its own name (not the shared crate's) and
/// `version`.
pub fn check_version(path: &str, operator: &OperatorDescriptor, version: &str) -> Result<()> {
    let out = std::process::Command::new(path).arg("--version").output()?;
    ensure!(out.status.success(), "{path} --version failed");
    let printed = String::from_utf8(out.stdout)?;
    let expected = format!("{} {version}", operator.binary_name());
    ensure!(
        printed.trim() == expected,
        "{printed:?} is not {expected:?}"
    );
    Ok(())
}

/// `deploy/<package>/config.yaml`'s `config.yaml` key, resolved by the operator's binary as it
/// is in its pod (`POD_NAMESPACE=payments-system`), with leader election on its own lease
/// (`<binary>-leader`).
pub fn shipped_config(operator: &OperatorDescriptor) -> Result<RuntimeConfig> {
    let manifest = shipped_manifest(operator, "config.yaml")?;
    let file = manifest["data"]["config.yaml"]
        .as_str()
        .context("the ConfigMap's config.yaml key")?;
    let config = std::env::temp_dir().join(format!(
        "{}-config-{}.yaml",
        operator.package(),
        std::process::id()
    ));
    std::fs::write(&config, file)?;
    let flags = Flags {
        config: Some(config.clone()),
        ..Flags::default()
    };
    let env = |name: &str| (name == "POD_NAMESPACE").then(|| "payments-system".to_string());
    let resolved = RuntimeConfig::resolve(&flags, &operator.binary, env);
    let _ = std::fs::remove_file(&config);
    let resolved = resolved?;
    let lease = resolved
        .leader_election
        .as_ref()
        .map(|l| l.lease_name.clone());
    let expected = format!("{}-leader", operator.binary_name());
    ensure!(
        lease.as_deref() == Some(expected.as_str()),
        "the shipped config elects a leader on {lease:?}, not {expected}"
    );
    Ok(resolved)
}

/// The shipped-binary test of an operator's suite: its binary (`CARGO_BIN_EXE_<binary>`)
/// answers `--version` as this package's version, reads deploy/'s config file, and what that
/// config resolves to passes the operator's own `checks`.
///
/// ```ignore
/// operator_harness::shipped_binary_test!(batch_processor::OPERATOR, "batch-processor-operator", |config| {
///     assert!(config.workloads.default_resources.is_some());
/// });
/// ```
#[macro_export]
macro_rules! shipped_binary_test {
    ($operator:expr, $binary:literal, $checks:expr) => {
        #[test]
        fn the_binary_answers_as_shipped_and_reads_its_shipped_config() -> anyhow::Result<()> {
            let binary = env!(concat!("CARGO_BIN_EXE_", $binary));
            let version = env!("CARGO_PKG_VERSION");
            let config = $crate::shipped::shipped(&$operator, binary, version)?;
            let checks: fn(&operator_core::runtime::config::RuntimeConfig) = $checks;
            checks(&config);
            Ok(())
        }
    };
}
