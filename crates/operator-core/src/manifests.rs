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

/// `objects` as one multi-document YAML text, each document opened by `---`.
pub fn to_documents<'a>(
    objects: impl IntoIterator<Item = &'a Value>,
) -> Result<String, serde_yaml::Error> {
    let mut text = String::new();
    for object in objects {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(object)?);
    }
    Ok(text)
}

/// The first object of `kind` in `yaml`, if any.
pub fn first_of_kind(yaml: &str, kind: &str) -> Result<Option<Value>, serde_yaml::Error> {
    Ok(documents(yaml)?.into_iter().find(|o| o["kind"] == kind))
}

/// An object as its owner wrote it: no status, no server-set metadata, no finalizers (the
/// operators add theirs again), no kubectl bookkeeping.
pub fn as_written(mut object: Value) -> Value {
    if let Some(o) = object.as_object_mut() {
        o.remove("status");
    }
    if let Some(meta) = object["metadata"].as_object_mut() {
        for field in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
            "finalizers",
            "ownerReferences",
        ] {
            meta.remove(field);
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove(crate::annotations::LAST_APPLIED);
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    if object["kind"] == "Namespace"
        && let Some(o) = object.as_object_mut()
    {
        o.remove("spec");
    }
    object
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
        let written = to_documents(&objects).unwrap_or_default();
        assert_eq!(documents(&written).unwrap_or_default(), objects);
    }
}
