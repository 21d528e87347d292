//! What the real API server validates on every object, whatever its kind, and testkit must
//! too so a test sees the refusal a cluster would give: label keys and values, and the size
//! of a ConfigMap's or Secret's data.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::error::Cause;
use crate::registry::ResourceType;

/// A ConfigMap's or Secret's data: at most 1 MiB, all keys together.
const MAX_DATA_BYTES: usize = 1024 * 1024;

static NAME_PART: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").ok());
static DNS_SUBDOMAIN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").ok()
});

fn matches(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(s))
}

/// A qualified name (`prefix/name` or `name`), as label keys are: the messages the real
/// server gives.
fn label_key(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && (prefix.is_empty() || prefix.len() > 253 || !matches(&DNS_SUBDOMAIN, prefix))
    {
        return Some(format!(
            "Invalid value: {key:?}: prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ));
    }
    if name.is_empty() || name.len() > 63 {
        return Some(format!(
            "Invalid value: {key:?}: name part must be no more than 63 characters"
        ));
    }
    (!matches(&NAME_PART, name)).then(|| format!(
        "Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
    ))
}

fn label_value(value: &str) -> Option<String> {
    if value.len() > 63 {
        return Some(format!(
            "Invalid value: {value:?}: must be no more than 63 characters"
        ));
    }
    (!value.is_empty() && !matches(&NAME_PART, value)).then(|| format!(
        "Invalid value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
    ))
}

/// The refusals of `obj` (of type `rt`) on the checks of the module docs.
pub(super) fn object_meta_and_size(rt: &ResourceType, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (key, value) in obj["metadata"]["labels"].as_object().into_iter().flatten() {
        let value = value.as_str().unwrap_or_default();
        for message in [label_key(key), label_value(value)].into_iter().flatten() {
            causes.push(Cause {
                field: "metadata.labels".into(),
                message,
            });
        }
    }
    if rt.group.is_empty() && (rt.kind == "ConfigMap" || rt.kind == "Secret") {
        // Counted as stored: a ConfigMap's `data` as text, base64 values (a Secret's `data`,
        // a ConfigMap's `binaryData`) as the bytes they decode to.
        let encoded = |field: &str| rt.kind == "Secret" || field == "binaryData";
        let size: usize = ["data", "binaryData"]
            .iter()
            .flat_map(|f| {
                obj[*f]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(move |(k, v)| (*f, k, v))
            })
            .map(|(f, k, v)| {
                let len = v.as_str().map_or(0, str::len);
                k.len() + if encoded(f) { len / 4 * 3 } else { len }
            })
            .sum();
        if size > MAX_DATA_BYTES {
            causes.push(Cause {
                field: "[]".into(),
                message: format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
            });
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked_as_the_real_server_checks_them() {
        assert_eq!(label_key("app.kubernetes.io/name"), None);
        assert_eq!(label_key("team"), None);
        assert!(label_key("Bad_Prefix/x").is_some());
        assert!(label_key(&"a".repeat(64)).is_some());
        assert_eq!(label_value(""), None);
        assert_eq!(label_value(&"a".repeat(63)), None);
        assert!(label_value(&"a".repeat(64)).is_some());
        assert!(label_value("-x").is_some());
    }
}
