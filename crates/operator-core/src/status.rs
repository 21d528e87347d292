//! Writes to the status subresource, made only when the status differs from what is stored.

use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{Error, Result};

/// Replaces the status of `name` with `desired` unless `current` already equals it.
/// Returns whether a write was made. The whole status is replaced (a JSON patch `add` of
/// `/status`), so fields the operator no longer sets disappear.
pub async fn patch_status_if_changed<K, S>(
    api: &Api<K>,
    name: &str,
    current: Option<&S>,
    desired: &S,
) -> Result<bool>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(desired) {
        return Ok(false);
    }
    let value = serde_json::to_value(desired).map_err(|source| Error::Serialization {
        what: format!("status of {name}"),
        source,
    })?;
    let patch: json_patch::Patch = serde_json::from_value(
        json!([{"op": "add", "path": "/status", "value": value}]),
    )
    .map_err(|source| Error::Serialization {
        what: format!("status patch of {name}"),
        source,
    })?;
    api.patch_status(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await?;
    Ok(true)
}
