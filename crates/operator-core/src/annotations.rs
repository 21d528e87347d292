//! The annotations a user sets on a resource to ask its operator for something
//! (`payments.io/promote`, `payments.io/run-now`, `fintech.io/resume-trading`). One that the
//! operator does not read on that kind, or whose value it cannot use, would otherwise be
//! ignored without a word; each gets a Warning event naming the annotation and what it
//! accepts, once per value (per process: a restart may say it once more), so a converged
//! resource stays free of writes.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ObjectMeta};
use serde_json::{Map, Value, json};

/// The annotation prefixes of the product: an annotation under one of them on a resource is
/// addressed to an operator.
pub const PRODUCT_PREFIXES: &[&str] = &["payments.io/", "fintech.io/", "payments-engine.io/"];

/// Whether annotation `key` is under one of the [`PRODUCT_PREFIXES`].
fn is_product(key: &str) -> bool {
    PRODUCT_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The annotation `kubectl apply` (client-side) keeps: a full copy of the object.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Keeps of a cached resource's metadata what a pass reads of who wrote what: of each
/// managed-fields entry only the product annotations it holds (what [`written_by`] asks),
/// entries holding none dropped, and no last-applied copy. Together those are most of a
/// resource's bytes in the cache (about 8 KiB each for a PaymentService applied by kubectl).
pub fn keep_annotation_writers(meta: &mut ObjectMeta) {
    if let Some(entries) = meta.managed_fields.as_mut() {
        entries.retain_mut(|entry| {
            let product: Map<String, Value> = entry
                .fields_v1
                .as_ref()
                .and_then(|fields| fields.0["f:metadata"]["f:annotations"].as_object())
                .into_iter()
                .flatten()
                .filter(|(field, _)| field.strip_prefix("f:").is_some_and(is_product))
                .map(|(field, leaf)| (field.clone(), leaf.clone()))
                .collect();
            if product.is_empty() {
                return false;
            }
            entry.fields_v1 = Some(FieldsV1(
                json!({ "f:metadata": { "f:annotations": product } }),
            ));
            true
        });
    }
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Who last wrote annotation `key` and when: the field manager (`kubectl-annotate`,
/// `kubectl-payments`, …) of the managed-fields entry that holds it, the latest if several
/// do. `None` where the API server recorded none (the entry was dropped, or never kept).
pub fn written_by(meta: &ObjectMeta, key: &str) -> Option<(String, Option<jiff::Timestamp>)> {
    let field = format!("f:{key}");
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|entry| {
            entry.fields_v1.as_ref().is_some_and(|fields| {
                fields.0["f:metadata"]["f:annotations"]
                    .as_object()
                    .is_some_and(|a| a.contains_key(&field))
            })
        })
        .max_by_key(|entry| entry.time.as_ref().map(|t| t.0))
        .map(|entry| {
            (
                entry
                    .manager
                    .clone()
                    .unwrap_or_else(|| "an unnamed client".into()),
                entry.time.as_ref().map(|t| t.0),
            )
        })
}

/// An annotation an operator reads on its resource, and which values it can use.
#[derive(Clone, Copy, Debug)]
pub struct ReadAnnotation {
    pub key: &'static str,
    /// What it accepts, in words, for the Warning.
    pub accepts: &'static str,
    pub valid: fn(&str) -> bool,
}

/// One annotation the operator will not act on, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ignored {
    pub key: String,
    pub value: String,
    pub why: String,
}

/// The annotations of a `kind` resource that its operator ignores: keys under a product
/// prefix it does not read, and values its rules refuse.
pub fn ignored<'a>(
    annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
    kind: &str,
    read: &[ReadAnnotation],
) -> Vec<Ignored> {
    let readable = || {
        let keys: Vec<&str> = read.iter().map(|r| r.key).collect();
        if keys.is_empty() {
            "none".to_string()
        } else {
            keys.join(", ")
        }
    };
    annotations
        .into_iter()
        .filter(|(key, _)| is_product(key))
        .filter_map(|(key, value)| {
            let why = match read.iter().find(|r| r.key == key.as_str()) {
                Some(rule) if (rule.valid)(value) => return None,
                Some(rule) => format!("it accepts {}", rule.accepts),
                None => format!(
                    "a {kind} does not read it (the annotations a {kind} reads: {})",
                    readable()
                ),
            };
            Some(Ignored {
                key: key.clone(),
                value: value.clone(),
                why,
            })
        })
        .collect()
}

/// What was said already, per object UID: each notice once.
#[derive(Debug, Default)]
pub struct Notices(Mutex<HashSet<(String, String, String)>>);

impl Notices {
    /// Whether `(uid, key, value)` is new (and remembers it).
    pub fn first(&self, uid: &str, key: &str, value: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((uid.to_string(), key.to_string(), value.to_string()))
    }

    /// Keeps only what was said of objects whose UID is in `live`.
    pub fn retain(&self, live: &HashSet<String>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(u, _, _)| live.contains(u));
    }

    /// How many notices are remembered (for memory accounting).
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets what was said of an object that is gone.
    pub fn forget(&self, uid: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(u, _, _)| u != uid);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const PROMOTE: ReadAnnotation = ReadAnnotation {
        key: "payments.io/promote",
        accepts: "a version (a label value)",
        valid: |v| !v.is_empty() && !v.contains(' '),
    };

    #[test]
    fn unknown_and_unusable_annotations_are_named_with_what_is_accepted() {
        let annotations: BTreeMap<String, String> = [
            ("payments.io/promote", "1.5.0"),
            ("payments.io/run-now", "123"),
            ("payments-engine.io/adopt", "garbage"),
            ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
            ("test.payments.io/poke", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let found = ignored(&annotations, "PaymentService", &[PROMOTE]);
        let keys: Vec<&str> = found.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["payments-engine.io/adopt", "payments.io/run-now"]);
        assert!(found[1].why.contains("a PaymentService does not read it"));
        assert!(found[1].why.contains("payments.io/promote"));
        let bad: BTreeMap<String, String> =
            [("payments.io/promote".to_string(), "a b".to_string())].into();
        let found = ignored(&bad, "PaymentService", &[PROMOTE]);
        assert_eq!(found.len(), 1);
        assert!(found[0].why.contains("a version"));
    }

    #[test]
    fn a_cached_resource_keeps_who_wrote_each_product_annotation_and_nothing_else() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
        let entry = |manager: &str, minute: i8, fields: Value| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            time: Some(Time(
                jiff::civil::date(2026, 12, 7)
                    .at(10, minute, 0, 0)
                    .in_tz("UTC")
                    .unwrap()
                    .timestamp(),
            )),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        };
        let mut meta = ObjectMeta {
            annotations: Some(
                [
                    (LAST_APPLIED.to_string(), "{\"spec\":{}}".to_string()),
                    ("payments.io/pause".to_string(), "true".to_string()),
                ]
                .into(),
            ),
            managed_fields: Some(vec![
                entry(
                    "kubectl-client-side-apply",
                    1,
                    json!({"f:metadata": {"f:annotations": {
                        format!("f:{LAST_APPLIED}"): {}}},
                        "f:spec": {"f:image": {}, "f:replicas": {}}}),
                ),
                entry(
                    "kubectl-annotate",
                    2,
                    json!({"f:metadata": {"f:annotations": {
                        "f:payments.io/pause": {}, "f:team.example/owner": {}}},
                        "f:spec": {"f:replicas": {}}}),
                ),
            ]),
            ..ObjectMeta::default()
        };
        let before = written_by(&meta, "payments.io/pause");
        keep_annotation_writers(&mut meta);
        assert_eq!(written_by(&meta, "payments.io/pause"), before);
        assert_eq!(before.unwrap().0, "kubectl-annotate");
        let entries = meta.managed_fields.as_ref().unwrap();
        assert_eq!(
            entries.len(),
            1,
            "the entry without product annotations goes"
        );
        assert_eq!(
            entries[0].fields_v1.as_ref().unwrap().0,
            json!({"f:metadata": {"f:annotations": {"f:payments.io/pause": {}}}})
        );
        let annotations = meta.annotations.unwrap();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations["payments.io/pause"], "true");
    }

    #[test]
    fn each_notice_is_said_once_until_forgotten() {
        let notices = Notices::default();
        assert!(notices.first("u", "k", "v"));
        assert!(!notices.first("u", "k", "v"));
        assert!(notices.first("u", "k", "w"));
        notices.forget("u");
        assert!(notices.first("u", "k", "v"));
    }
}
