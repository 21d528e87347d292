//! Writes to the status subresource, made only when the status differs from what is stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::core::object::HasStatus;
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

/// How long after a status write a cached object without it counts as stale. Watch events
/// arrive in milliseconds; the bound keeps a status the server rewrites (it should not) from
/// pausing an object for longer.
const STALE_WINDOW: Duration = Duration::from_secs(5);

/// Remembers, per object, the last status this process wrote. A reconcile handed an object
/// whose status is not that one got it from a cache that has not seen the write yet (the
/// operator is the only writer of its status): acting on it would repeat the last pass's
/// transitions (a second "rolled back" event, a second canary step). Such a pass skips; the
/// write's own watch event brings the object back with its new status.
#[derive(Clone, Debug, Default)]
pub struct StatusWrites {
    written: Arc<Mutex<HashMap<String, (serde_json::Value, Instant)>>>,
}

impl StatusWrites {
    fn entries(&self) -> MutexGuard<'_, HashMap<String, (serde_json::Value, Instant)>> {
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `obj` predates the last status write for it.
    pub fn is_stale<K, S>(&self, obj: &K) -> bool
    where
        K: kube::Resource + HasStatus<Status = S>,
        S: Serialize,
    {
        let Some(uid) = obj.meta().uid.clone() else {
            return false;
        };
        let mut entries = self.entries();
        let Some((written, at)) = entries.get(&uid) else {
            return false;
        };
        let current = serde_json::to_value(obj.status()).unwrap_or_default();
        if current == *written || at.elapsed() > STALE_WINDOW {
            entries.remove(&uid);
            return false;
        }
        true
    }

    /// [`patch_status_if_changed`] for `obj`, remembering the write.
    pub async fn patch<K, S>(&self, api: &Api<K>, obj: &K, desired: &S) -> Result<bool>
    where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
        K: HasStatus<Status = S>,
        S: Serialize + PartialEq,
    {
        let name = obj.meta().name.clone().unwrap_or_default();
        let written = patch_status_if_changed(api, &name, obj.status(), desired).await?;
        if written && let Some(uid) = obj.meta().uid.clone() {
            let value = serde_json::to_value(Some(desired)).unwrap_or_default();
            self.entries().insert(uid, (value, Instant::now()));
        }
        Ok(written)
    }
}
