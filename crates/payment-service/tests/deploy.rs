//! The manifests in deploy/payment-service agree with the binary: its config file parses, and
//! its RBAC names no wildcard.

use anyhow::{Context as _, Result};
use operator_core::runtime::config::{Flags, RuntimeConfig};
use serde_json::Value;

fn manifest(file: &str) -> Result<Vec<Value>> {
    let path = format!(
        "{}/../../deploy/payment-service/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).context(path)?;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        docs.push(serde::Deserialize::deserialize(doc)?);
    }
    Ok(docs)
}

#[test]
fn the_shipped_config_file_parses_for_this_binary() -> Result<()> {
    let config = manifest("config.yaml")?;
    let file = config[0]["data"]["config.yaml"]
        .as_str()
        .context("config.yaml key")?;
    let path = std::env::temp_dir().join(format!("payment-config-{}.yaml", std::process::id()));
    std::fs::write(&path, file)?;
    let flags = Flags {
        config: Some(path.clone()),
        ..Flags::default()
    };
    let env = |name: &str| (name == "POD_NAMESPACE").then(|| "payments-system".to_string());
    let resolved = RuntimeConfig::resolve(&flags, &payment_service::BINARY, env);
    let _ = std::fs::remove_file(&path);
    let resolved = resolved?;
    assert!(
        resolved
            .own
            .get::<payment_service::Settings>()
            .backup_image
            .is_some()
    );
    Ok(())
}

#[test]
fn rbac_names_every_verb_and_resource() -> Result<()> {
    for doc in manifest("rbac.yaml")? {
        for rule in doc["rules"].as_array().into_iter().flatten() {
            for list in ["apiGroups", "resources", "verbs"] {
                let values = rule[list].as_array().context(list)?;
                assert!(
                    values.iter().all(|v| v != "*"),
                    "{list} in {}",
                    doc["metadata"]["name"]
                );
            }
        }
    }
    Ok(())
}

#[test]
fn version_names_the_binary_not_the_shared_crate() -> Result<()> {
    operator_harness::shipped::check_version(
        env!("CARGO_BIN_EXE_payment-service-operator"),
        &payment_service::OPERATOR,
        env!("CARGO_PKG_VERSION"),
    )
}
