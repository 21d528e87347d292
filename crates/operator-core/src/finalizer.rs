//! Finalizers for operators whose resources need work done before they go (drain, graceful
//! stop, final report). Built on kube's `runtime::finalizer`: the finalizer is added before
//! the first apply (so before any child exists), cleanup runs once `deletionTimestamp` is
//! set, and the finalizer is removed only after cleanup succeeded. A failed cleanup keeps the
//! finalizer and comes back as [`Error::Cleanup`], which is retried with backoff and reported.

use std::future::Future;
use std::sync::Arc;

use kube::Resource;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self as kube_finalizer, Event};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// What a finalizer-guarded reconcile is asked to do.
pub use kube_finalizer::Event as FinalizerEvent;

/// Runs `reconcile` under the finalizer `name`: `Event::Apply` while the object lives,
/// `Event::Cleanup` once it is being deleted.
pub async fn with_finalizer<K, F, Fut>(
    api: &Api<K>,
    name: &str,
    obj: Arc<K>,
    reconcile: F,
) -> Result<Action>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    F: FnOnce(Event<K>) -> Fut,
    Fut: Future<Output = Result<Action>>,
{
    kube_finalizer::finalizer(api, name, obj, reconcile)
        .await
        .map_err(|e| match e {
            kube_finalizer::Error::ApplyFailed(e) => e,
            kube_finalizer::Error::CleanupFailed(e) => Error::Cleanup(Box::new(e)),
            kube_finalizer::Error::AddFinalizer(e) | kube_finalizer::Error::RemoveFinalizer(e) => {
                Error::Kube(e)
            }
            kube_finalizer::Error::UnnamedObject => Error::MissingField("metadata.name"),
            kube_finalizer::Error::InvalidFinalizer => {
                Error::MissingField("a valid finalizer path")
            }
        })
}
