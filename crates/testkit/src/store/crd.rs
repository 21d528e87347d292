//! Installing a CustomResourceDefinition: its kinds become servable.

use serde_json::{Value, json};

use crate::error::{ApiError, Cause};
use crate::managed;
use crate::registry::{self};
use crate::schema;

use super::{Store, meta_str};

impl Store {
    /// Validates a CRD's schema is structural enough to serve, makes its kinds servable and
    /// reports it Established, as the apiextensions controller would.
    pub(super) fn install_crd(&mut self, crd: &mut Value) -> Result<(), ApiError> {
        let name = meta_str(crd, "name").to_string();
        let new_types = registry::from_crd(crd);
        let causes: Vec<Cause> = new_types
            .iter()
            .filter_map(|t| t.schema.as_ref())
            .flat_map(schema::structural_violations)
            .collect();
        if !causes.is_empty() {
            return Err(ApiError::invalid("CustomResourceDefinition", &name, causes));
        }
        if new_types.is_empty() {
            return Err(ApiError::invalid(
                "CustomResourceDefinition",
                &name,
                vec![Cause {
                    field: "spec.versions".into(),
                    message: "Invalid value: must have exactly one version marked as storage version and at least one served".into(),
                }],
            ));
        }
        let expected = format!(
            "{}.{}",
            crd["spec"]["names"]["plural"].as_str().unwrap_or_default(),
            crd["spec"]["group"].as_str().unwrap_or_default()
        );
        if name != expected {
            return Err(ApiError::invalid(
                "CustomResourceDefinition",
                &name,
                vec![Cause {
                    field: "metadata.name".into(),
                    message: format!(
                        "Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
                    ),
                }],
            ));
        }
        let key = (
            crd["spec"]["group"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            crd["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        match crate::conversion::Conversion::of(crd) {
            Some(conversion) => self.conversions.insert(key, conversion),
            None => self.conversions.remove(&key),
        };
        for t in new_types {
            self.types.retain(|old| {
                !(old.group == t.group && old.version == t.version && old.plural == t.plural)
            });
            self.types.push(t);
        }
        let now = managed::now();
        crd["status"] = json!({
            "acceptedNames": crd["spec"]["names"],
            "storedVersions": crd["spec"]["versions"].as_array().into_iter().flatten()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .map(|v| v["name"].clone()).collect::<Vec<_>>(),
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
            ],
        });
        Ok(())
    }
}
