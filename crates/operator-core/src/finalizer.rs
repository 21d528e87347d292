//! Finalizers for resources whose deletion has real work to do (drain, graceful stop, final
//! report). The finalizer is added before the first apply (so before any child exists);
//! once `deletionTimestamp` is set, cleanup runs on every reconcile until it reports
//! [`Cleanup::Done`], and only then is the finalizer removed. Cleanup that is still waiting
//! (pods draining) keeps the finalizer and looks again later; cleanup that fails keeps it and
//! comes back as [`Error::Cleanup`], retried with backoff and reported — never skipped.
//!
//! Patches are JSON patches with a `test` of the list they edit, so a concurrent change to
//! the finalizers (another controller's) makes the write fail and retry instead of clobbering.
//!
//! **A namespace being deleted is never held up.** Its contents all go, children included,
//! and the operator's namespaced RoleBinding may go before its resources do, taking its
//! rights there with it. So cleanup is told which deletion it is ([`Deletion`]): when the
//! namespace is going, it keeps its record and releases, and touches no child. (Releasing
//! needs only the rights over the operator's own resources, which its manifests grant
//! cluster-wide for exactly this reason.)

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
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

/// What is being deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// The resource alone: undo what it set up (drain, stop, keep backups).
    Resource,
    /// Its namespace: everything in it goes with it. Keep the record, release, and touch no
    /// child (the operator may have lost its rights in the namespace already).
    Namespace,
}

/// Which deletion this is: the namespace's when it is gone or being deleted. A namespace the
/// operator may not read counts as staying (the cleanup then does its full work).
async fn deletion_of(client: kube::Client, namespace: Option<&str>) -> Deletion {
    let Some(namespace) = namespace else {
        return Deletion::Resource;
    };
    match Api::<Namespace>::all(client).get_opt(namespace).await {
        Ok(Some(ns)) if ns.metadata.deletion_timestamp.is_none() => Deletion::Resource,
        Ok(_) => Deletion::Namespace,
        Err(error) => {
            tracing::warn!(error = %crate::error::describe_kube(&error), namespace, "cannot tell whether the namespace is being deleted");
            Deletion::Resource
        }
    }
}

/// How long ago `obj`'s deletion was asked for (zero when it is not being deleted): what a
/// cleanup bounded by a timeout measures.
pub fn since_deletion<K: Resource>(obj: &K, now: jiff::Timestamp) -> Duration {
    obj.meta()
        .deletion_timestamp
        .as_ref()
        .map_or(Duration::ZERO, |t| t.0.duration_until(now).unsigned_abs())
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
/// `cleanup` once it is being deleted, told whether the namespace goes too.
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
    C: FnOnce(Arc<K>, Deletion) -> CF,
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
        (true, Some(index)) => {
            let deletion =
                deletion_of(api.clone().into_client(), obj.meta().namespace.as_deref()).await;
            match cleanup(obj, deletion).await {
                Ok(Cleanup::Done) => {
                    let path = format!("/metadata/finalizers/{index}");
                    let patch = json!([
                        {"op": "test", "path": path, "value": finalizer},
                        {"op": "remove", "path": path},
                    ]);
                    match patch_finalizers(api, &name, patch).await {
                        // Already gone: a pass handed a cached copy from before the release
                        // (after a restart, or a write's watch event still on its way).
                        Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 => {}
                        other => other?,
                    }
                    Ok(Action::await_change())
                }
                Ok(Cleanup::Waiting(after)) => Ok(Action::requeue(after)),
                // The object is gone: nothing is left to clean up or release.
                Err(Error::Kube(kube::Error::Api(s))) if s.code == 404 => {
                    Ok(Action::await_change())
                }
                Err(e) => Err(Error::Cleanup(Box::new(e))),
            }
        }
        // Being deleted and not ours to hold: nothing to do.
        (true, None) => Ok(Action::await_change()),
    }
}
