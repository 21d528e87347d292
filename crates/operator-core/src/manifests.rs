//! Multi-document YAML (`---`-separated), as `kubectl apply -f` reads it: the samples, the
//! rendered overlays, the install file, a backup.

use serde_json::Value;

/// The objects of `yaml`, in order; empty documents are skipped.
pub fn documents(yaml: &str) -> Result<Vec<Value>, serde_yaml::Error> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let object: Value = serde::Deserialize::deserialize(document)?;
        if !object.is_null() {
            objects.push(object);
        }
    }
    Ok(objects)
}

/// The first object of `kind` in `yaml`, if any.
pub fn first_of_kind(yaml: &str, kind: &str) -> Result<Option<Value>, serde_yaml::Error> {
    Ok(documents(yaml)?.into_iter().find(|o| o["kind"] == kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_read_in_order_and_empty_ones_skipped() {
        let yaml = "---\nkind: A\n---\n---\nkind: B\n---\nkind: A\nmetadata: {name: second}\n";
        let objects = documents(yaml).unwrap_or_default();
        let found: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
        assert_eq!(found, ["A", "B", "A"]);
        let first = first_of_kind(yaml, "A").ok().flatten().unwrap_or_default();
        assert!(first.get("metadata").is_none());
        assert!(documents("kind: [").is_err());
    }
}
