//! Finalizers for resources whose deletion has real work to do (drain, graceful stop, final
//! report). The finalizer is added before the first apply (so before any child exists);
//! once `deletionTimestamp` is set, cleanup runs on every reconcile until it reports
//! [`Cleanup::Done`], and only then is the finalizer removed. Cleanup that is still waiting
//! (pods draining) keeps the finalizer and looks again later; cleanup that fails keeps it and
//! comes back as [`Error::Cleanup`], retried with backoff and reported — never skipped.
//!
//! Patches are JSON patches with a `test` of the list they edit, so a concurrent change to
//! the finalizers (another controller's) makes the write fail and retry instead of clobbering.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{Error, Result};

/// Where a cleanup stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Everything is done; the finalizer can go.
    Done,
    /// Still in progress (e.g. pods stopping); look again after this long.
    Waiting(Duration),
}

/// Edits the finalizer list with a JSON patch (its `test` guards against concurrent edits).
async fn patch_finalizers<K>(api: &Api<K>, name: &str, ops: serde_json::Value) -> Result<()>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(|source| Error::Serialization {
            what: "finalizer patch".into(),
            source,
        })?;
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await?;
    Ok(())
}

/// Runs `apply` while the object lives (after making sure it carries `finalizer`), and
/// `cleanup` once it is being deleted.
pub async fn with_finalizer<K, A, AF, C, CF>(
    api: &Api<K>,
    finalizer: &str,
    obj: Arc<K>,
    apply: A,
    cleanup: C,
) -> Result<Action>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    A: FnOnce(Arc<K>) -> AF,
    AF: Future<Output = Result<Action>>,
    C: FnOnce(Arc<K>) -> CF,
    CF: Future<Output = Result<Cleanup>>,
{
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    let finalizers = obj.meta().finalizers.clone().unwrap_or_default();
    let position = finalizers.iter().position(|f| f == finalizer);
    let deleting = obj.meta().deletion_timestamp.is_some();
    match (deleting, position) {
        (false, Some(_)) => apply(obj).await,
        (false, None) => {
            let patch = if finalizers.is_empty() {
                json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
                ])
            } else {
                json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                    {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
                ])
            };
            patch_finalizers(api, &name, patch).await?;
            // The write triggers the next reconcile, which applies.
            Ok(Action::await_change())
        }
        (true, Some(index)) => match cleanup(obj).await {
            Ok(Cleanup::Done) => {
                let path = format!("/metadata/finalizers/{index}");
                let patch = json!([
                    {"op": "test", "path": path, "value": finalizer},
                    {"op": "remove", "path": path},
                ]);
                patch_finalizers(api, &name, patch).await?;
                Ok(Action::await_change())
            }
            Ok(Cleanup::Waiting(after)) => Ok(Action::requeue(after)),
            Err(e) => Err(Error::Cleanup(Box::new(e))),
        },
        // Being deleted and not ours to hold: nothing to do.
        (true, None) => Ok(Action::await_change()),
    }
}
