//! PATCH other than apply: merge, strategic merge and JSON patches.

use serde_json::Value;

use crate::error::ApiError;
use crate::fieldpath::{self};
use crate::registry::ResourceType;

use super::{Store, Written, meta_str};

impl Store {
    /// PATCH with a merge, strategic-merge or JSON patch.
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        patch: PatchBody,
        subresource: Option<&str>,
        manager: &str,
    ) -> Result<Written, ApiError> {
        let old = self.existing(rt, namespace, name)?;
        let mut new = old.clone();
        match patch {
            PatchBody::Merge(p) => json_patch::merge(&mut new, &p),
            PatchBody::Strategic(p) => strategic_merge(&mut new, &p, rt),
            PatchBody::Json(ops) => apply_json_patch(&mut new, ops)?,
        }
        // A resourceVersion in a patch is a precondition, not a value to write.
        if meta_str(&new, "resourceVersion") == meta_str(&old, "resourceVersion") {
            new["metadata"]["resourceVersion"] = Value::Null;
        }
        self.update_from(rt, old, new, subresource, manager)
    }
}

/// The body of a PATCH other than apply.
#[derive(Debug)]
pub enum PatchBody {
    Merge(Value),
    Strategic(Value),
    Json(Vec<Value>),
}

/// A strategic merge patch without `$patch` directives: a merge patch whose keyed lists
/// merge by key.
pub(super) fn strategic_merge(target: &mut Value, patch: &Value, rt: &ResourceType) {
    let mut nulls_removed = target.clone();
    json_patch::merge(&mut nulls_removed, &strip_lists(patch));
    fieldpath::merge_applied(&mut nulls_removed, &only_lists(patch), &rt.lists);
    *target = nulls_removed;
}

pub(super) fn strip_lists(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_array())
                .map(|(k, v)| (k.clone(), strip_lists(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

pub(super) fn only_lists(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| v.is_array() || v.is_object())
                .map(|(k, v)| (k.clone(), only_lists(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// RFC 6902, with the API server's leniency: `test` of `null` passes on a missing path.
pub(super) fn apply_json_patch(target: &mut Value, ops: Vec<Value>) -> Result<(), ApiError> {
    let mut kept = Vec::new();
    for op in ops {
        if op["op"] == "test" && op["value"].is_null() {
            let path = op["path"].as_str().unwrap_or_default();
            match target.pointer(path) {
                None | Some(Value::Null) => continue,
                Some(_) => {
                    return Err(ApiError::invalid_patch(format!(
                        "testing value {path} failed: expected null"
                    )));
                }
            }
        }
        kept.push(op);
    }
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(kept))
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(target, &patch).map_err(|e| ApiError::invalid_patch(e.to_string()))
}
