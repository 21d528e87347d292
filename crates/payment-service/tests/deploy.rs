//! The binary as it ships: `--version` names it, the config file in deploy/payment-service is
//! one it reads, and its RBAC names no wildcard.

use anyhow::{Context as _, Result};
use serde_json::Value;

fn manifest(file: &str) -> Result<Vec<Value>> {
    let path = format!(
        "{}/../../deploy/payment-service/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).context(path)?;
    Ok(operator_core::manifests::documents(&text)?)
}

operator_harness::shipped_binary_test!(
    payment_service::OPERATOR,
    "payment-service-operator",
    |config| {
        let settings = config.own.get::<payment_service::Settings>();
        assert_eq!(
            settings.backup_image, None,
            "the backup Jobs run the operator's own image"
        );
        // Images that run as root by default are refused by restricted pod security: the
        // shipped config names a user (README, "OpenShift", says to remove it there).
        assert_eq!(config.workloads.run_as_user, Some(65532));
    }
);

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
