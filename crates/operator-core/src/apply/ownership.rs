//! Whose an existing object is, and what of it the operator owns: the checks behind "never
//! take over an object" and "a converged child costs no request".

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use kube::Resource;
use kube::core::ObjectMeta;

use super::{ADOPT_ANNOTATION, short_digest};

/// The key under which a cached child keeps the digest of the operator's managed fields.
const OWNED_DIGEST_KEY: &str = "digest";

/// The operator's own apply entry in `managedFields` (not a subresource's).
fn own_entry<'a>(meta: &'a ObjectMeta, manager: &str) -> Option<&'a ManagedFieldsEntry> {
    meta.managed_fields.iter().flatten().find(|e| {
        e.manager.as_deref() == Some(manager)
            && e.operation.as_deref() == Some("Apply")
            && e.subresource.as_deref().unwrap_or_default().is_empty()
    })
}

/// A digest of the fields `manager`'s apply owns on the object: it moves only when that set
/// changes (someone took a field over, or removed one). Works on full metadata and on the
/// compacted metadata the child caches keep.
pub(super) fn owned_fields_digest(meta: &ObjectMeta, manager: &str) -> Option<String> {
    let fields = &own_entry(meta, manager)?.fields_v1.as_ref()?.0;
    if let Some(digest) = fields.get(OWNED_DIGEST_KEY).and_then(|d| d.as_str())
        && fields.as_object().is_some_and(|o| o.len() == 1)
    {
        // Real field sets never have this key: they use `f:`, `k:`, `v:`, `i:` and `.`.
        return Some(digest.to_string());
    }
    let bytes = serde_json::to_vec(fields).unwrap_or_default();
    Some(short_digest([bytes.as_slice()]))
}

/// Replaces `managedFields` with the digest of `manager`'s own entry: a cached child keeps a
/// few bytes instead of a field set that can be larger than the rest of its metadata.
pub(super) fn compact_managed_fields(meta: &mut ObjectMeta, manager: &str) {
    let digest = owned_fields_digest(meta, manager);
    meta.managed_fields = digest.map(|digest| {
        vec![ManagedFieldsEntry {
            manager: Some(manager.to_string()),
            operation: Some("Apply".into()),
            fields_v1: Some(FieldsV1(serde_json::json!({ OWNED_DIGEST_KEY: digest }))),
            ..ManagedFieldsEntry::default()
        }]
    });
}

/// Whose an existing object with a child's name is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Holder {
    /// This owner controls it.
    Owner,
    /// No controller, and the user handed it to this owner with [`ADOPT_ANNOTATION`].
    HandedOver,
    /// Someone else's: in words, for the conflict message.
    Other(String),
}

/// Whether `owner` is the controller of the object `meta` describes: the one check before an
/// operator trusts what a child of that name holds (its data, its status).
pub fn controlled_by<O: Resource>(meta: &ObjectMeta, owner: &O) -> bool {
    let uid = owner.meta().uid.as_deref();
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && Some(r.uid.as_str()) == uid)
}

/// The object `name` of kind `C` in `owner`'s namespace, when `owner` controls it: one of that
/// name that is someone else's says nothing of the owner's (its status, its data), and is
/// read as absent.
pub async fn get_controlled<C, O>(
    client: &kube::Client,
    owner: &O,
    name: &str,
) -> Result<Option<C>, kube::Error>
where
    C: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    O: Resource,
{
    let namespace = owner.meta().namespace.as_deref().unwrap_or_default();
    let found = kube::Api::<C>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?;
    Ok(found.filter(|c| controlled_by(c.meta(), owner)))
}

pub(super) fn holder_of<O: Resource<DynamicType = ()>>(meta: &ObjectMeta, owner: &O) -> Holder {
    let owner_uid = owner.meta().uid.as_deref().unwrap_or_default();
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    match controller {
        Some(r) if r.uid == owner_uid => Holder::Owner,
        Some(r) => Holder::Other(format!("is controlled by {} {}", r.kind, r.name)),
        None => {
            let handover = format!(
                "{}/{}",
                O::kind(&()),
                owner.meta().name.as_deref().unwrap_or_default()
            );
            let annotated = meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(ADOPT_ANNOTATION));
            match annotated {
                Some(value) if *value == handover => Holder::HandedOver,
                // A hand-over to someone else, or a value that hands it to no one: said, so
                // the user sees why it was not taken.
                Some(value) => Holder::Other(format!(
                    "was not created by this operator, and its annotation {ADOPT_ANNOTATION}={value} hands it to no one here (set it to {handover} to hand it to this resource; it takes <Kind>/<name>)"
                )),
                None => Holder::Other(format!(
                    "was not created by this operator (annotate it {ADOPT_ANNOTATION}={handover} to hand it over)"
                )),
            }
        }
    }
}

pub(super) fn contains_all(
    observed: Option<&BTreeMap<String, String>>,
    desired: &BTreeMap<String, String>,
) -> bool {
    desired
        .iter()
        .all(|(k, v)| observed.and_then(|o| o.get(k)) == Some(v))
}
