//! The child kinds an operator owns, declared once (Stackable's `ClusterResources` is the
//! shape): each kind is watched as metadata, triggers its owner's reconcile, and is part of
//! the prune set. A reconcile pass ([`ChildPass`]) applies what it wants and records it; at
//! the end every declared kind is pruned of this owner's children the pass did not apply, so
//! a new child kind cannot be forgotten in prune.
//!
//! ```ignore
//! let (children, watches) = ChildKinds::builder(client, IDENTITY, namespace)
//!     .kind::<Deployment>(Prune::Yes)
//!     .kind::<PersistentVolumeClaim>(Prune::Never)   // data kept on purpose
//!     .optional_kind::<ServiceMonitor>()              // its CRD may not be installed
//!     .build();
//! // in a reconcile:
//! let mut pass = ctx.children.pass(&*owner);
//! pass.apply(deployment).await?;
//! let changes = pass.finish().await?;               // applies nothing more, prunes the rest
//! ```

use std::any::Any;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use kube::core::{ApiResource, DynamicObject, ObjectMeta};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};

use super::dependencies::{RefusedSibling, Uses, pod_labels};
use super::observed::{self, ObservedCache, ObservedKind};
use super::{Changes, ChildObject, Children, Foreign, OperatorIdentity, WatchedKind};
use crate::error::{Error, RefusedChild, Result};

/// Whether a pass deletes this owner's children of a kind that it did not apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prune {
    Yes,
    /// Never deleted by the operator: data kept on purpose (a backup claim).
    Never,
}

/// How long the answer to "does the cluster serve this optional kind?" is trusted, so
/// installing its CRD later is noticed without a restart.
const DISCOVERY_TTL: Duration = Duration::from_secs(300);

/// One declared kind, with the type erased so the set can be walked.
trait DeclaredKind: Send + Sync {
    fn kind(&self) -> String;
    fn prune(&self) -> Prune;
    /// Optional kinds: whether the cluster serves it (cached); declared kinds always are.
    fn served<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<bool>>;
    fn prune_for<'a>(
        &'a self,
        owner: &'a ObjectMeta,
        keep: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<Vec<String>>>;
    fn retain_owners(&self, live: &HashSet<String>) -> usize;
    fn forget_owner(&self, owner_uid: &str);
    fn recorded(&self) -> usize;
    fn as_any(&self) -> &dyn Any;
}

struct Declared<K: Resource<DynamicType = ()> + 'static> {
    children: Children<K>,
    prune: Prune,
    /// `Some` for an optional kind: the cached answer of discovery and when it was asked.
    discovery: Option<Mutex<Option<(bool, Instant)>>>,
}

impl<K> DeclaredKind for Declared<K>
where
    K: ChildObject,
{
    fn kind(&self) -> String {
        K::kind(&()).into_owned()
    }

    fn prune(&self) -> Prune {
        self.prune
    }

    fn served<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<bool>> {
        async move {
            let Some(known) = &self.discovery else {
                return Ok(true);
            };
            if let Some((served, at)) = *known.lock().unwrap_or_else(PoisonError::into_inner)
                && at.elapsed() < DISCOVERY_TTL
            {
                return Ok(served);
            }
            let served = match client.list_api_group_resources(&K::api_version(&())).await {
                Ok(list) => list.resources.iter().any(|r| r.name == K::plural(&())),
                Err(kube::Error::Api(s)) if s.code == 404 => false,
                Err(e) => return Err(e.into()),
            };
            *known.lock().unwrap_or_else(PoisonError::into_inner) = Some((served, Instant::now()));
            Ok(served)
        }
        .boxed()
    }

    fn prune_for<'a>(
        &'a self,
        owner: &'a ObjectMeta,
        keep: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        self.children.prune_for(owner, keep).boxed()
    }

    fn retain_owners(&self, live: &HashSet<String>) -> usize {
        self.children.retain_owners(live)
    }

    fn forget_owner(&self, owner_uid: &str) {
        self.children.forget_owner(owner_uid);
    }

    fn recorded(&self) -> usize {
        self.children.recorded()
    }

    fn as_any(&self) -> &dyn Any {
        &self.children
    }
}

/// Metadata of any child kind, as the owner trigger sees it.
type ChildEvents = BoxStream<'static, Result<DynamicObject, watcher::Error>>;

/// The watches of every declared kind, for [`crate::OperatorController::owns_children`]: each
/// keeps its kind's cache current and triggers the owner of what changed.
pub struct ChildWatches {
    pub(crate) streams: Vec<ChildEvents>,
    /// Resolves once every cache has its first full list.
    pub(crate) synced: Vec<BoxFuture<'static, ()>>,
}

impl Debug for ChildWatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildWatches")
            .field("kinds", &self.streams.len())
            .finish()
    }
}

impl ChildWatches {
    /// The owners (of type `O`) whose children changed: a child's controller owner reference.
    pub(crate) fn owner_of<O: Resource<DynamicType = ()>>(
        child: &DynamicObject,
    ) -> Option<ObjectRef<O>> {
        let controller = child
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true))?;
        let owner_api_version = O::api_version(&());
        (controller.kind == O::kind(&()) && controller.api_version == owner_api_version).then(
            || {
                let mut key = ObjectRef::new(&controller.name);
                if let Some(ns) = &child.metadata.namespace {
                    key = key.within(ns);
                }
                key
            },
        )
    }

    /// The kind trigger events carry (unused beyond logging).
    pub(crate) fn api_resource() -> ApiResource {
        ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Child".into(),
            plural: "children".into(),
        }
    }
}

/// The child kinds of one operator. Cheap to clone; clones share caches and records.
#[derive(Clone)]
pub struct ChildKinds {
    client: Client,
    identity: OperatorIdentity,
    kinds: Arc<Vec<Arc<dyn DeclaredKind>>>,
    observed: Arc<Vec<ObservedCache>>,
}

impl Debug for ChildKinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildKinds")
            .field(
                "kinds",
                &self.kinds.iter().map(|k| k.kind()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Declares the kinds; see [`ChildKinds::builder`].
pub struct ChildKindsBuilder {
    client: Client,
    identity: OperatorIdentity,
    namespace: Option<String>,
    kinds: Vec<Arc<dyn DeclaredKind>>,
    observed: Vec<ObservedCache>,
    watches: ChildWatches,
}

impl Debug for ChildKindsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildKindsBuilder").finish_non_exhaustive()
    }
}

impl ChildKindsBuilder {
    /// A kind the operator always may create: watched as metadata (this operator's children
    /// only), triggering its owner, pruned per `prune`.
    #[must_use]
    pub fn kind<K>(mut self, prune: Prune) -> Self
    where
        K: ChildObject,
    {
        let (children, watch) = Children::<K>::watched(
            self.client.clone(),
            self.identity,
            self.namespace.as_deref(),
        );
        let cache = watch.cache;
        self.watches.synced.push(
            async move {
                let _ = crate::readiness::cache_filled(&cache).await;
            }
            .boxed(),
        );
        self.watches.streams.push(
            watch
                .stream
                .map(|item| {
                    item.map(|meta| DynamicObject {
                        types: None,
                        metadata: meta.metadata,
                        data: serde_json::Value::Null,
                    })
                })
                .boxed(),
        );
        self.kinds.push(Arc::new(Declared {
            children,
            prune,
            discovery: None,
        }));
        self
    }

    /// Several kinds at once, each as [`Self::kind`] with [`Prune::Yes`]: the usual case,
    /// `.kinds::<(Deployment, Service, PodDisruptionBudget)>()`.
    #[must_use]
    pub fn kinds<L: KindList>(self) -> Self {
        L::declare(self)
    }

    /// A kind whose CRD may not be installed (a ServiceMonitor): not watched, looked up on
    /// the API server; [`ChildKinds::served`] says whether it exists (asked of discovery at
    /// most every five minutes), and prune skips it where it does not.
    #[must_use]
    pub fn optional_kind<K>(mut self) -> Self
    where
        K: ChildObject,
    {
        self.kinds.push(Arc::new(Declared {
            children: Children::<K>::uncached(self.client.clone(), self.identity),
            prune: Prune::Yes,
            discovery: Some(Mutex::new(None)),
        }));
        self
    }

    /// Also keeps in memory the state a pass reads of this kind's children (declare the kind
    /// too), so [`crate::Context::controlled`] answers without a request once it is cached.
    /// See [`ObservedKind`] for what is kept.
    #[must_use]
    pub fn observed<K: ObservedKind>(mut self) -> Self {
        let watch = observed::watch::<K>(
            self.client.clone(),
            self.identity,
            self.namespace.as_deref(),
        );
        self.watches.synced.push(watch.synced);
        self.watches.streams.push(watch.stream);
        self.observed.push(watch.cache);
        self
    }

    pub fn build(self) -> (ChildKinds, ChildWatches) {
        (
            ChildKinds {
                client: self.client,
                identity: self.identity,
                kinds: Arc::new(self.kinds),
                observed: Arc::new(self.observed),
            },
            self.watches,
        )
    }
}

/// A tuple of child kinds, declared in order by [`ChildKindsBuilder::kinds`].
pub trait KindList {
    fn declare(builder: ChildKindsBuilder) -> ChildKindsBuilder;
}

macro_rules! kind_list {
    ($($kind:ident),+) => {
        impl<$($kind: ChildObject),+> KindList for ($($kind,)+) {
            fn declare(builder: ChildKindsBuilder) -> ChildKindsBuilder {
                builder$(.kind::<$kind>(Prune::Yes))+
            }
        }
    };
}

kind_list!(A);
kind_list!(A, B);
kind_list!(A, B, C);
kind_list!(A, B, C, D);
kind_list!(A, B, C, D, E);
kind_list!(A, B, C, D, E, F);
kind_list!(A, B, C, D, E, F, G);
kind_list!(A, B, C, D, E, F, G, H);
kind_list!(A, B, C, D, E, F, G, H, I);
kind_list!(A, B, C, D, E, F, G, H, I, J);

impl ChildKinds {
    pub fn builder(
        client: Client,
        identity: OperatorIdentity,
        namespace: Option<&str>,
    ) -> ChildKindsBuilder {
        ChildKindsBuilder {
            client,
            identity,
            namespace: namespace.map(String::from),
            kinds: Vec::new(),
            observed: Vec::new(),
            watches: ChildWatches {
                streams: Vec::new(),
                synced: Vec::new(),
            },
        }
    }

    fn declared<K: Resource<DynamicType = ()> + 'static>(&self) -> Result<&Arc<dyn DeclaredKind>> {
        self.kinds
            .iter()
            .find(|k| k.as_any().is::<Children<K>>())
            .ok_or_else(|| Error::UndeclaredChildKind(K::kind(&()).into_owned()))
    }

    /// The children of kind `K` (declared with the builder).
    pub fn of<K: Resource<DynamicType = ()> + 'static>(&self) -> Result<&Children<K>> {
        self.declared::<K>()?
            .as_any()
            .downcast_ref::<Children<K>>()
            .ok_or_else(|| Error::UndeclaredChildKind(K::kind(&()).into_owned()))
    }

    /// The child `name` of kind `K` in `namespace` as its cache knows it (`Some(None)`: there
    /// is none of this operator's); `None` when `K` is not declared
    /// [`ChildKindsBuilder::observed`] or its cache has not listed yet: ask the API server.
    pub fn cached<K: WatchedKind>(&self, namespace: &str, name: &str) -> Option<Option<K>> {
        self.observed
            .iter()
            .find_map(ObservedCache::get::<K>)
            .and_then(|store| observed::cached(store, namespace, name))
    }

    /// Whether the cluster serves kind `K` (always, for a kind that is not optional).
    pub async fn served<K: Resource<DynamicType = ()> + 'static>(&self) -> Result<bool> {
        self.declared::<K>()?.served(&self.client).await
    }

    /// A reconcile pass over `owner`'s children.
    pub fn pass<'a, O: Resource<DynamicType = ()>>(&'a self, owner: &'a O) -> ChildPass<'a, O> {
        ChildPass {
            kinds: self,
            owner,
            applied: HashMap::new(),
            changes: Changes::default(),
            refused_siblings: Vec::new(),
        }
    }

    /// Drops the apply records of children whose owner is not in `live` (owner UIDs).
    pub fn retain_owners(&self, live: &HashSet<String>) -> usize {
        self.kinds.iter().map(|k| k.retain_owners(live)).sum()
    }

    /// Drops the apply records of one owner's children (it was deleted).
    pub fn forget_owner(&self, owner_uid: &str) {
        for kind in self.kinds.iter() {
            kind.forget_owner(owner_uid);
        }
    }

    /// How many children this process holds an apply record for, over every kind.
    pub fn recorded(&self) -> usize {
        self.kinds.iter().map(|k| k.recorded()).sum()
    }
}

/// One reconcile pass over an owner's children: what it applied, and what it changed.
pub struct ChildPass<'a, O> {
    kinds: &'a ChildKinds,
    owner: &'a O,
    /// Kind → names this pass applied (or kept).
    applied: HashMap<String, BTreeSet<String>>,
    changes: Changes,
    /// Children refused as someone else's, or withheld because they use one: what the rest
    /// of the pass must not use.
    refused_siblings: Vec<RefusedSibling>,
}

/// What became of a child of an optional kind this pass (a ServiceMonitor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionalChild {
    /// The resource does not ask for it.
    NotWanted,
    Applied,
    /// Its kind is not served: the CRD (the Prometheus Operator's) is not installed.
    Unavailable,
}

impl<O> Debug for ChildPass<'_, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildPass")
            .field("applied", &self.applied)
            .field("changes", &self.changes)
            .finish_non_exhaustive()
    }
}

impl<O: Resource<DynamicType = ()>> ChildPass<'_, O> {
    /// The API of kind `K` in the owner's namespace, as the operator's client.
    pub(super) fn api_beside_owner<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
    {
        let namespace = self.owner.meta().namespace.as_deref().unwrap_or_default();
        Api::namespaced(self.kinds.client.clone(), namespace)
    }

    /// The operator's field manager.
    pub(super) fn manager(&self) -> &'static str {
        self.kinds.identity.manager
    }

    /// Applies one desired child (see [`Children::apply_noted`]); it is kept from prune.
    pub async fn apply<K>(&mut self, desired: K) -> Result<()>
    where
        K: ChildObject,
    {
        self.apply_with(desired, Foreign::Conflict).await
    }

    /// [`Self::apply`], deciding with `foreign` what an object of that name that the owner
    /// does not control means.
    ///
    /// A child that uses a sibling refused earlier in the pass (see [`super::dependencies`])
    /// is withheld: not applied, reported as refused, and removed if an earlier pass made it,
    /// since it would act on, route to or run with someone else's object. Apply what others
    /// use first (ConfigMaps before the Deployment, the Deployment before its autoscaler).
    pub async fn apply_with<K>(&mut self, desired: K, foreign: Foreign) -> Result<()>
    where
        K: ChildObject,
    {
        let kind = K::kind(&()).into_owned();
        let name = desired.meta().name.clone().unwrap_or_default();
        self.keep::<K>(name.clone());
        let sibling = self.as_sibling(&kind, &name, &desired)?;
        if !self.refused_siblings.is_empty() {
            let object = serde_json::to_value(&desired).map_err(|source| Error::Serialization {
                what: format!("{kind} {name}"),
                source,
            })?;
            if let Some(used) = Uses::of(&kind, &object).refused(&self.refused_siblings) {
                let used = format!("{} {}", used.kind, used.name);
                return self.withhold::<K>(sibling, used).await;
            }
        }
        let refused_before = self.changes.refused.len();
        self.kinds
            .of::<K>()?
            .apply_noted_with(self.owner, desired, foreign, &mut self.changes)
            .await?;
        let conflict = self.changes.refused[refused_before..]
            .iter()
            .any(|r| r.reason == "ChildNameConflict");
        if conflict {
            self.refused_siblings.push(sibling);
        }
        Ok(())
    }

    /// What other children could use of this one, should it be refused: its labels (as
    /// stamped) and, for a workload, its pods' labels.
    fn as_sibling<K: ChildObject>(
        &self,
        kind: &str,
        name: &str,
        desired: &K,
    ) -> Result<RefusedSibling> {
        let runs_pods = matches!(
            kind,
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "CronJob"
        );
        let pod_labels = if runs_pods {
            let object = serde_json::to_value(desired).map_err(|source| Error::Serialization {
                what: format!("{kind} {name}"),
                source,
            })?;
            pod_labels(kind, &object)
        } else {
            None
        };
        let mut labels = desired.meta().labels.clone().unwrap_or_default();
        labels.extend(
            self.kinds
                .identity
                .standard_labels(self.owner.meta().name.as_deref().unwrap_or_default()),
        );
        Ok(RefusedSibling {
            kind: kind.to_string(),
            name: name.to_string(),
            pod_labels,
            labels,
        })
    }

    /// Leaves out a child that uses `used`, a sibling that is not this owner's: reported as
    /// refused (so nothing is pruned this pass and Ready says why), and deleted if an earlier
    /// pass made it.
    async fn withhold<K: ChildObject>(
        &mut self,
        child: RefusedSibling,
        used: String,
    ) -> Result<()> {
        let removed = self
            .kinds
            .of::<K>()?
            .remove_controlled(self.owner.meta(), &child.name)
            .await?;
        let mut message = format!(
            "{} {} is not applied: it would use {used}, which is not this resource's (see that conflict)",
            child.kind, child.name
        );
        if removed {
            message.push_str("; the one made earlier was deleted");
            self.changes
                .pruned
                .push(format!("{}/{}", child.kind, child.name));
        }
        tracing::warn!(child = %format!("{}/{}", child.kind, child.name), %used, removed, "child withheld: it uses an object that is not the owner's");
        self.changes.refused.push(RefusedChild {
            child: format!("{}/{}", child.kind, child.name),
            reason: crate::reason!("UsesForeignObject"),
            message,
        });
        self.refused_siblings.push(child);
        Ok(())
    }

    /// Applies a child of an optional kind (one whose CRD may not be installed) when it is
    /// wanted, if its kind is served: what became of it.
    pub async fn apply_optional<K>(&mut self, desired: Option<K>) -> Result<OptionalChild>
    where
        K: ChildObject,
    {
        let Some(desired) = desired else {
            return Ok(OptionalChild::NotWanted);
        };
        if !self.kinds.served::<K>().await? {
            return Ok(OptionalChild::Unavailable);
        }
        self.apply(desired).await?;
        Ok(OptionalChild::Applied)
    }

    /// Keeps a child of kind `K` from prune without applying it this pass (a Deployment a
    /// rollout is still retiring).
    pub fn keep<K: Resource<DynamicType = ()>>(&mut self, name: impl Into<String>) {
        self.applied
            .entry(K::kind(&()).into_owned())
            .or_default()
            .insert(name.into());
    }

    /// What the pass changed so far.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// Ends the pass: every declared kind is pruned of the owner's children it did not apply
    /// or keep. A pass in which a child was refused prunes nothing: what it would replace may
    /// still be serving.
    pub async fn finish(mut self) -> Result<Changes> {
        if !self.changes.refused.is_empty() {
            return Ok(self.changes);
        }
        let empty = BTreeSet::new();
        for kind in self.kinds.kinds.iter() {
            if kind.prune() == Prune::Never || !kind.served(&self.kinds.client).await? {
                continue;
            }
            let name = kind.kind();
            let keep = self.applied.get(&name).unwrap_or(&empty);
            let deleted = kind.prune_for(self.owner.meta(), keep).await?;
            self.changes
                .pruned
                .extend(deleted.iter().map(|d| format!("{name}/{d}")));
        }
        Ok(self.changes)
    }
}
