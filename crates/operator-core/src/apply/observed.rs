//! Children whose state a pass reads — a Deployment's ready pods, an autoscaler's load, a
//! CronJob's last schedule — kept in a cache by a watch of this operator's children of that
//! kind, so a converged resync reads them without a request. Only what a pass reads is kept:
//! the pod template and every other manager's managed fields are dropped as objects arrive.
//!
//! Another controller writes that state (the Deployment and HPA controllers), so a cached copy
//! that lags a moment is only as stale as a GET a moment earlier would be: the change reaches
//! the cache and, through the metadata watch, triggers the owner again. Data the operator
//! itself writes and reads back (a ConfigMap it keeps its own records in) is not for this
//! cache: read it from the API server.

use std::any::Any;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use kube::core::{DynamicObject, ObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Map, Value};

use crate::annotations::LAST_APPLIED;

use super::{ChildObject, OperatorIdentity, WatchedKind};

/// A child kind whose state a pass reads from a cache: what to keep of each object.
pub trait ObservedKind: ChildObject {
    /// The fields of the operator's own apply a pass asks about (paths in its managed-fields
    /// entry, `["f:spec", "f:replicas"]`); the rest of that entry, which lists every field
    /// the apply sets and can outweigh the object, is dropped.
    const OWN_FIELDS_READ: &'static [&'static [&'static str]] = &[];

    /// Drops what no pass reads of this kind (its metadata is trimmed already).
    fn trim(&mut self) {}
}

impl ObservedKind for Deployment {
    /// Whether the apply still holds `replicas` ([`crate::autoscaling::held_replicas`]).
    const OWN_FIELDS_READ: &'static [&'static [&'static str]] = &[&["f:spec", "f:replicas"]];

    /// Keeps spec (replicas, selector) and status; the pod template, the bulk of the object,
    /// goes.
    fn trim(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            spec.template = Default::default();
        }
    }
}

impl ObservedKind for HorizontalPodAutoscaler {}

impl ObservedKind for CronJob {
    /// Keeps schedule and status; the Job template goes.
    fn trim(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            spec.job_template = Default::default();
        }
    }
}

/// Keeps of the metadata what a pass reads: owner references, labels, annotations but the
/// last-applied copy, and of `manager`'s own managed-fields entries only the paths `read`
/// (which fields its apply holds, e.g. a Deployment's `replicas` before an autoscaler takes
/// them); every other manager's entry goes.
fn trim_metadata(meta: &mut ObjectMeta, manager: &str, read: &[&[&str]]) {
    if let Some(entries) = meta.managed_fields.as_mut() {
        entries.retain(|e| e.manager.as_deref() == Some(manager) && !read.is_empty());
        for entry in entries.iter_mut() {
            if let Some(fields) = entry.fields_v1.as_mut() {
                fields.0 = kept_paths(&fields.0, read);
            }
        }
    }
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Of a field set, the paths `read` that it holds (each as an empty leaf), nothing else.
fn kept_paths(fields: &Value, read: &[&[&str]]) -> Value {
    let mut kept = Map::new();
    for path in read {
        if path
            .iter()
            .try_fold(fields, |node, key| node.get(*key))
            .is_some()
        {
            insert_path(&mut kept, path);
        }
    }
    Value::Object(kept)
}

fn insert_path(node: &mut Map<String, Value>, path: &[&str]) {
    if let Some((first, rest)) = path.split_first()
        && let Value::Object(child) = node
            .entry(*first)
            .or_insert_with(|| Value::Object(Map::new()))
    {
        insert_path(child, rest);
    }
}

/// One observed kind's cache, with the type erased so the set can be searched by type.
pub(super) struct ObservedCache(Arc<dyn Any + Send + Sync>);

impl ObservedCache {
    pub(super) fn get<K: WatchedKind>(&self) -> Option<&Store<K>> {
        self.0.downcast_ref::<Store<K>>()
    }
}

/// The watch of one observed kind: the cache it fills, the stream that fills it (it yields
/// nothing: the kind's metadata watch already triggers owners) and when it has listed once.
pub(super) struct ObservedWatch {
    pub(super) cache: ObservedCache,
    pub(super) stream: BoxStream<'static, Result<DynamicObject, watcher::Error>>,
    pub(super) synced: BoxFuture<'static, ()>,
}

pub(super) fn watch<K: ObservedKind>(
    client: Client,
    identity: OperatorIdentity,
    namespace: Option<&str>,
) -> ObservedWatch {
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default().labels(&identity.managed_selector());
    let manager = identity.manager;
    let kind = K::kind(&()).into_owned();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(move |object: &mut K| {
            trim_metadata(object.meta_mut(), manager, K::OWN_FIELDS_READ);
            object.trim();
        })
        .reflect(writer)
        .filter_map(move |event| {
            if let Err(e) = event {
                tracing::warn!(kind = %kind, error = %e, "watch of observed children failed; retrying");
            }
            std::future::ready(None)
        })
        .boxed();
    let filled = reader.clone();
    ObservedWatch {
        cache: ObservedCache(Arc::new(reader)),
        stream,
        synced: async move {
            let _ = crate::readiness::cache_filled(&filled).await;
        }
        .boxed(),
    }
}

/// The child `name` of `namespace` as the cache knows it: `None` before the cache has listed
/// once. A listed cache holds every child of this operator, so one it does not hold is not
/// there (or, unlabelled, not this operator's): `Some(None)`, without a request.
pub(super) fn cached<K: WatchedKind>(
    store: &Store<K>,
    namespace: &str,
    name: &str,
) -> Option<Option<K>> {
    store.wait_until_ready().now_or_never()?.ok()?;
    Some(
        store
            .get(&ObjectRef::new(name).within(namespace))
            .map(|found| (*found).clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use serde_json::json;

    #[test]
    fn a_cached_deployment_keeps_replicas_status_and_its_own_apply_entry_only() {
        let mut d: Deployment = serde_json::from_value(json!({
            "metadata": {
                "name": "d",
                "uid": "u1",
                "annotations": {LAST_APPLIED: "{…}", "keep": "yes"},
                "managedFields": [
                    {"manager": "ours", "operation": "Apply", "fieldsV1": {"f:spec": {
                        "f:replicas": {},
                        "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}}}}},
                    }}},
                    {"manager": "kube-controller-manager", "operation": "Update"},
                ],
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
            },
            "status": {"readyReplicas": 2},
        }))
        .expect("deployment");
        trim_metadata(&mut d.metadata, "ours", Deployment::OWN_FIELDS_READ);
        d.trim();
        let managers: Vec<_> = d
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|m: &ManagedFieldsEntry| m.manager.clone().unwrap_or_default())
            .collect();
        assert_eq!(managers, ["ours"]);
        let own = d.metadata.managed_fields.as_ref().map(|m| m[0].clone());
        assert_eq!(
            own.and_then(|m| m.fields_v1).map(|f| f.0),
            Some(json!({"f:spec": {"f:replicas": {}}})),
            "only what a pass asks of its own apply"
        );
        assert_eq!(
            crate::autoscaling::held_replicas(&d, "ours", 3).map(|h| h.current),
            Some(3),
            "held_replicas still reads it"
        );
        let annotations = d.metadata.annotations.clone().unwrap_or_default();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations.get("keep").map(String::as_str), Some("yes"));
        let spec = d.spec.clone().unwrap_or_default();
        assert_eq!(spec.replicas, Some(3));
        assert!(spec.template.spec.is_none(), "the pod template is dropped");
        assert_eq!(d.status.and_then(|s| s.ready_replicas), Some(2));
    }

    #[test]
    fn a_kind_whose_own_fields_no_pass_reads_keeps_no_managed_fields() {
        let mut meta: ObjectMeta = serde_json::from_value(json!({
            "name": "h",
            "managedFields": [{"manager": "ours", "operation": "Apply", "fieldsV1": {"f:spec": {}}}],
        }))
        .expect("metadata");
        trim_metadata(&mut meta, "ours", HorizontalPodAutoscaler::OWN_FIELDS_READ);
        assert_eq!(meta.managed_fields, Some(Vec::new()));
    }
}
