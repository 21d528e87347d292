//! Apply and prune of the children an operator owns.
//!
//! Every child is written with server-side apply under the operator's field manager, with
//! `force`, a controller owner reference and the standard labels. A converged child costs
//! **no request**: the apply is skipped when
//!
//! 1. the child's cached metadata carries [`DESIRED_HASH_ANNOTATION`] equal to the hash of the
//!    desired object (so the desired state has not changed since it was applied), and
//! 2. the child has not drifted since this process applied it: the set of fields the operator's
//!    apply owns (its `managedFields` entry) is the one the apply returned, and its labels and
//!    annotations still hold the desired ones.
//!
//! Why the owned fields and not `generation` or `resourceVersion`: many kinds have no
//! generation (Service, ConfigMap, ServiceAccount, HorizontalPodAutoscaler...), and their
//! resourceVersion moves whenever anything else writes them (the HPA controller rewrites its
//! status every 15 s). Someone who changes a field the operator owns takes that field over
//! (an update moves ownership; a forced apply too), so the operator's entry shrinks: that is
//! exactly the drift worth repairing, and nothing else moves it.
//!
//! **Never someone else's object.** An object that already has a child's name is applied only
//! when this owner controls it (its controller owner reference). One controlled by another
//! owner, or by none, is refused as a [`Error::ChildNameConflict`] and left untouched, unless
//! it carries [`ADOPT_ANNOTATION`] naming this owner and no other controller (the user's
//! explicit hand-over). Objects a user names for the operator to use (a ServiceAccount) are
//! applied with [`Foreign::Use`]: created when missing, used as they are when they exist.
//!
//! Why a hash and not "desired ⊆ observed" over cached objects: the subset check needs every
//! child cached in full (a Deployment is several KB; 1,000 resources × 4 children is tens of
//! MB), while this check needs only metadata. Children are therefore watched as metadata
//! (`PartialObjectMeta`, managed fields reduced to a digest of the operator's own entry), and
//! the per-child record kept here is a hash and a digest. The cost: after a restart the record is empty, so each child is applied
//! once (a server-side no-op when nothing changed) before the skip takes over. A change made
//! by someone else to an owned field moves its ownership, a deletion empties the cache entry,
//! an edit of labels or annotations fails the subset check: each is repaired on the next
//! reconcile.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::core::{NamespaceResourceScope, ObjectMeta, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::{Error, RefusedChild, Result};

mod dependencies;
mod kinds;
mod observed;
mod ownership;
mod served;

pub use dependencies::uses;
pub use kinds::{
    ChildKinds, ChildKindsBuilder, ChildPass, ChildWatches, KindList, OptionalChild, Prune,
};
pub use observed::ObservedKind;

/// A namespaced kind an operator watches and caches (its own resource, a child, a related
/// object): what every watch and cache asks of its type, named once.
pub trait WatchedKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> WatchedKind for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// A kind an operator applies, caches and prunes as a child: a watched kind it also writes.
pub trait ChildObject: WatchedKind + Serialize {}

impl<K: WatchedKind + Serialize> ChildObject for K {}
use ownership::{Holder, compact_managed_fields, contains_all, holder_of, owned_fields_digest};
pub use ownership::{controlled_by, get_controlled};
pub use served::ServedWorkload;

/// Annotation on every child: the hash of the desired object last applied.
pub const DESIRED_HASH_ANNOTATION: &str = "payments-engine.io/desired-hash";
/// `app.kubernetes.io/part-of` of every child.
pub const PART_OF: &str = "payments-engine";
/// The explicit hand-over of an existing object that no controller owns: set to
/// `<OwnerKind>/<ownerName>` (e.g. `PaymentService/ledger-api`), it lets that owner adopt
/// the object as its child. Without it an operator never takes over an object it did not
/// create.
pub const ADOPT_ANNOTATION: &str = "payments-engine.io/adopt";

/// Who an operator is, as its children and writes show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperatorIdentity {
    /// The field manager and `app.kubernetes.io/managed-by`, e.g. `trading-operator`.
    pub manager: &'static str,
    /// `app.kubernetes.io/name` of the children, e.g. `trading-algorithm`.
    pub app_name: &'static str,
}

impl OperatorIdentity {
    /// The standard labels of a child of `instance` (the owning resource's name).
    pub fn standard_labels(&self, instance: &str) -> BTreeMap<String, String> {
        [
            ("app.kubernetes.io/name", self.app_name),
            ("app.kubernetes.io/instance", instance),
            ("app.kubernetes.io/managed-by", self.manager),
            ("app.kubernetes.io/part-of", PART_OF),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The label selector that finds everything this operator manages.
    pub fn managed_selector(&self) -> String {
        format!("app.kubernetes.io/managed-by={}", self.manager)
    }
}

/// What an apply did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The child did not exist and was created.
    Created,
    /// The child existed and was changed (new spec, or repaired drift).
    Updated,
    /// The child already matched: no request was made, or the apply changed nothing.
    Unchanged,
    /// An object of that name exists and is not this owner's; with [`Foreign::Use`] it is used
    /// as it is: nothing was written.
    UsedExisting,
}

/// What to do when an object with the child's name exists and this owner does not control it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Foreign {
    /// Refuse: [`Error::ChildNameConflict`], nothing written (the operator's own children).
    Conflict,
    /// Use it as it is, never change, own or delete it (an object the user names, such as a
    /// ServiceAccount, that the operator creates only when it is missing).
    Use,
}

/// The hash and owned-fields digest of a child as this process last applied it, and whose
/// child it is (so the record goes when its owner does).
#[derive(Clone, Debug, PartialEq, Eq)]
struct AppliedRecord {
    hash: String,
    owned: Option<String>,
    owner_uid: String,
}

/// A short (16 hex digit) digest of `parts`, each ended by a NUL so `("ab", "c")` and
/// `("a", "bc")` differ: for pod-template config hashes and other change markers.
pub fn short_digest<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hash recorded on a child: of the desired object as it will be sent, minus the hash
/// annotation itself.
pub fn desired_hash<K: Serialize>(desired: &K) -> Result<String> {
    Ok(hash_and_size(desired)?.0)
}

/// The largest child an operator sends: the API server keeps an object of about 1.5 MiB at
/// most, and a ConfigMap's or Secret's data at most 1 MiB. A bigger one is refused before it
/// is sent, with its size and what to do, instead of an opaque 413 or 422 later.
pub const MAX_CHILD_BYTES: usize = 1024 * 1024;

/// [`desired_hash`], and the size of the object as JSON.
fn hash_and_size<K: Serialize>(desired: &K) -> Result<(String, usize)> {
    let bytes = serde_json::to_vec(desired).map_err(|source| Error::Serialization {
        what: "desired child".into(),
        source,
    })?;
    let digest = Sha256::digest(&bytes);
    Ok((
        digest.iter().take(10).map(|b| format!("{b:02x}")).collect(),
        bytes.len(),
    ))
}

/// What one reconcile pass changed among an owner's children, for events and status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub pruned: Vec<String>,
    /// Children that could not be applied (a name conflict, or the API server refused them);
    /// the rest of the pass went on without them.
    pub refused: Vec<RefusedChild>,
}

impl Changes {
    /// Notes the outcome of applying `Kind/name`.
    fn note(&mut self, child: String, applied: Applied) {
        match applied {
            Applied::Created => self.created.push(child),
            Applied::Updated => self.updated.push(child),
            Applied::Unchanged | Applied::UsedExisting => {}
        }
    }

    /// Whether anything was written.
    pub fn any(&self) -> bool {
        !(self.created.is_empty() && self.updated.is_empty() && self.pruned.is_empty())
    }

    /// The error that reports every refused child, if any was refused.
    pub fn refusal(&self) -> Option<Error> {
        (!self.refused.is_empty()).then(|| Error::ChildrenRefused(self.refused.clone()))
    }
}

/// `(namespace, name)` of a child.
type ChildKey = (Option<String>, String);

type MetaStream<K> = BoxStream<'static, Result<PartialObjectMeta<K>, watcher::Error>>;

/// The stream that keeps a [`Children`] cache current; hand it to the controller builder's
/// `owns`, which polls it and triggers the owner's reconcile on every change.
pub struct ChildWatch<K: Resource<DynamicType = ()> + 'static> {
    pub(crate) stream: MetaStream<K>,
    /// The cache the stream fills, to wait for its first full list.
    pub(crate) cache: Store<PartialObjectMeta<K>>,
}

impl<K: Resource<DynamicType = ()> + 'static> ChildWatch<K> {
    /// The stream alone, for a caller that drives it without a controller (tools, tests).
    pub fn into_stream(
        self,
    ) -> impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send {
        self.stream
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Debug for ChildWatch<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildWatch").finish_non_exhaustive()
    }
}

/// The children of one kind an operator owns: applies them, skips converged ones, prunes
/// the ones no longer wanted. Clones share one cache and one record.
pub struct Children<K: Resource<DynamicType = ()> + 'static> {
    client: Client,
    identity: OperatorIdentity,
    cache: Option<Store<PartialObjectMeta<K>>>,
    applied: Arc<Mutex<HashMap<ChildKey, AppliedRecord>>>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Children<K> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            identity: self.identity,
            cache: self.cache.clone(),
            applied: self.applied.clone(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Debug for Children<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Children")
            .field("kind", &K::kind(&()))
            .field("identity", &self.identity)
            .field("cached", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl<K> Children<K>
where
    K: ChildObject,
{
    /// Children backed by a metadata cache of this operator's children of kind `K` (in
    /// `namespace`, or everywhere). The cache fills once the returned watch is polled.
    pub fn watched(
        client: Client,
        identity: OperatorIdentity,
        namespace: Option<&str>,
    ) -> (Self, ChildWatch<K>) {
        let api: Api<PartialObjectMeta<K>> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let (reader, writer) = reflector::store();
        let config = watcher::Config::default().labels(&identity.managed_selector());
        let manager = identity.manager;
        let stream = watcher(api, config)
            .default_backoff()
            .modify(move |meta: &mut PartialObjectMeta<K>| {
                compact_managed_fields(&mut meta.metadata, manager);
            })
            .reflect(writer)
            .touched_objects()
            .boxed();
        let children = Self {
            client,
            identity,
            cache: Some(reader.clone()),
            applied: Arc::default(),
        };
        (
            children,
            ChildWatch {
                stream,
                cache: reader,
            },
        )
    }

    /// Children without a cache: every skip check reads the child's metadata from the API
    /// server (one GET), and prune lists. For tools and tests; operators use [`Self::watched`].
    pub fn uncached(client: Client, identity: OperatorIdentity) -> Self {
        Self {
            client,
            identity,
            cache: None,
            applied: Arc::default(),
        }
    }

    fn api(&self, namespace: Option<&str>) -> Api<K> {
        match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<ChildKey, AppliedRecord>> {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The child's metadata: from the cache when it holds it, else from the API server. The
    /// cache holds only objects labelled as this operator's, so a miss is either a child not
    /// created yet or someone else's object with that name; one GET tells them apart.
    async fn observed(&self, key: &ChildKey) -> Result<Option<ObjectMeta>> {
        let (namespace, name) = key;
        if let Some(cache) = &self.cache {
            let mut cache_key = ObjectRef::<PartialObjectMeta<K>>::new(name);
            if let Some(ns) = namespace {
                cache_key = cache_key.within(ns);
            }
            if let Some(cached) = cache.get(&cache_key) {
                return Ok(Some(cached.metadata.clone()));
            }
        }
        Ok(self
            .api(namespace.as_deref())
            .get_metadata_opt(name)
            .await?
            .map(|m| m.metadata))
    }

    /// Stamps the desired child with what every child carries: namespace, owner reference,
    /// standard labels and the desired-state hash.
    fn stamp<O>(&self, owner: &O, mut desired: K) -> Result<K>
    where
        O: Resource<DynamicType = ()>,
    {
        let owner_ref = owner
            .controller_owner_ref(&())
            .ok_or(Error::MissingField("metadata.uid of the owner"))?;
        let instance = owner
            .meta()
            .name
            .clone()
            .ok_or(Error::MissingField("metadata.name of the owner"))?;
        let meta = desired.meta_mut();
        meta.namespace = owner.meta().namespace.clone();
        meta.owner_references = Some(vec![owner_ref]);
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .extend(self.identity.standard_labels(&instance));
        if let Some(annotations) = meta.annotations.as_mut() {
            annotations.remove(DESIRED_HASH_ANNOTATION);
        }
        let (hash, size) = hash_and_size(&desired)?;
        if size > MAX_CHILD_BYTES {
            return Err(Error::ChildRejected {
                kind: K::kind(&()).into_owned(),
                name: desired.meta().name.clone().unwrap_or_default(),
                message: format!(
                    "it would be {size} bytes, and an object may hold at most {MAX_CHILD_BYTES} bytes: make what the spec puts in it smaller"
                ),
            });
        }
        desired
            .meta_mut()
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(DESIRED_HASH_ANNOTATION.into(), hash);
        Ok(desired)
    }

    /// Applies one desired child of `owner`, unless it already matches (see the module docs).
    /// An object of that name that `owner` does not control is a [`Error::ChildNameConflict`].
    pub async fn apply<O>(&self, owner: &O, desired: K) -> Result<Applied>
    where
        O: Resource<DynamicType = ()>,
    {
        self.apply_with(owner, desired, Foreign::Conflict).await
    }

    /// [`Self::apply`], deciding with `foreign` what an existing object of that name that
    /// `owner` does not control means.
    pub async fn apply_with<O>(&self, owner: &O, desired: K, foreign: Foreign) -> Result<Applied>
    where
        O: Resource<DynamicType = ()>,
    {
        let desired = self.stamp(owner, desired)?;
        let name = desired
            .meta()
            .name
            .clone()
            .ok_or(Error::MissingField("metadata.name of a child"))?;
        let namespace = desired.meta().namespace.clone();
        let key: ChildKey = (namespace.clone(), name.clone());
        let hash = desired
            .annotations()
            .get(DESIRED_HASH_ANNOTATION)
            .cloned()
            .unwrap_or_default();

        let observed = self.observed(&key).await?;
        if let Some(meta) = &observed {
            match (holder_of(meta, owner), foreign) {
                (Holder::Owner | Holder::HandedOver, _) => {}
                (Holder::Other(_), Foreign::Use) => return Ok(Applied::UsedExisting),
                (Holder::Other(holder), Foreign::Conflict) => {
                    return Err(Error::ChildNameConflict {
                        kind: K::kind(&()).into_owned(),
                        name,
                        holder,
                    });
                }
            }
            let record = self.records().get(&key).cloned();
            let manager = self.identity.manager;
            let unchanged = meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(DESIRED_HASH_ANNOTATION))
                == Some(&hash)
                && record.is_some_and(|r| {
                    r.hash == hash && r.owned == owned_fields_digest(meta, manager)
                })
                && contains_all(meta.labels.as_ref(), desired.labels())
                && contains_all(meta.annotations.as_ref(), desired.annotations());
            if unchanged {
                return Ok(Applied::Unchanged);
            }
        }

        let params = PatchParams::apply(self.identity.manager).force();
        let written = self
            .api(namespace.as_deref())
            .patch(&name, &params, &Patch::Apply(&desired))
            .await
            .map_err(|e| Error::from_child_write(&K::kind(&()), &name, e))?;
        self.records().insert(
            key,
            AppliedRecord {
                hash,
                owned: owned_fields_digest(written.meta(), self.identity.manager),
                owner_uid: owner.meta().uid.clone().unwrap_or_default(),
            },
        );
        // An apply the server found nothing to change in (as after a restart, when the record
        // is empty) leaves the resourceVersion where it was: report it as unchanged.
        Ok(match observed {
            None => Applied::Created,
            Some(meta) if meta.resource_version == written.meta().resource_version => {
                Applied::Unchanged
            }
            Some(_) => Applied::Updated,
        })
    }

    /// The children of kind `K` that the owner with this metadata controls, by controller
    /// owner reference (never by name): `(name, uid)`, from the cache (a LIST when uncached;
    /// nothing when the kind is not served).
    async fn controlled_by(&self, owner: &ObjectMeta) -> Result<Vec<(String, String)>> {
        let owner_uid = owner
            .uid
            .clone()
            .ok_or(Error::MissingField("metadata.uid of the owner"))?;
        let namespace = owner.namespace.clone();
        let controlled_by_owner = |meta: &ObjectMeta| {
            meta.owner_references
                .iter()
                .flatten()
                .any(|r| r.controller == Some(true) && r.uid == owner_uid)
        };
        Ok(match &self.cache {
            Some(cache) => cache
                .state_filter(|m| {
                    m.metadata.namespace == namespace && controlled_by_owner(&m.metadata)
                })
                .iter()
                .map(|m| (m.name_any(), m.metadata.uid.clone().unwrap_or_default()))
                .collect(),
            None => match self
                .api(namespace.as_deref())
                .list_metadata(&ListParams::default().labels(&self.identity.managed_selector()))
                .await
            {
                Ok(list) => list
                    .items
                    .into_iter()
                    .filter(|m| controlled_by_owner(&m.metadata))
                    .map(|m| (m.name_any(), m.metadata.uid.clone().unwrap_or_default()))
                    .collect(),
                // The kind is not served here (an optional CRD): nothing of it to find.
                Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
                Err(e) => return Err(e.into()),
            },
        })
    }

    /// Names of the children of kind `K` that `owner` controls, as the cache sees them (a
    /// child created a moment ago may not be there yet).
    pub async fn names<O>(&self, owner: &O) -> Result<Vec<String>>
    where
        O: Resource<DynamicType = ()>,
    {
        Ok(self
            .controlled_by(owner.meta())
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    /// The UID of the child `name` of kind `K` if `owner` controls it, as the cache sees it:
    /// what objects that child owns in turn (a CronJob's Jobs) are recognised by.
    pub async fn controlled_uid<O>(&self, owner: &O, name: &str) -> Result<Option<String>>
    where
        O: Resource<DynamicType = ()>,
    {
        Ok(self
            .controlled_by(owner.meta())
            .await?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, uid)| uid))
    }

    /// Deletes the children of kind `K` that `owner` controls and that are not named in
    /// `keep`. Children are found by their controller owner reference, never by name.
    /// Returns the names deleted.
    pub async fn prune<O>(&self, owner: &O, keep: &BTreeSet<String>) -> Result<Vec<String>>
    where
        O: Resource<DynamicType = ()>,
    {
        self.prune_for(owner.meta(), keep).await
    }

    /// [`Self::prune`] for the owner with this metadata.
    pub(crate) async fn prune_for(
        &self,
        owner: &ObjectMeta,
        keep: &BTreeSet<String>,
    ) -> Result<Vec<String>> {
        let namespace = owner.namespace.clone();
        let candidates = self.controlled_by(owner).await?;
        let mut deleted = Vec::new();
        for (name, uid) in candidates
            .into_iter()
            .filter(|(name, _)| !keep.contains(name))
        {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            match self.api(namespace.as_deref()).delete(&name, &params).await {
                Ok(_) => {}
                // Already gone (or replaced by a new object of the same name): nothing to do.
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
            self.records().remove(&(namespace.clone(), name.clone()));
            deleted.push(name);
        }
        Ok(deleted)
    }

    /// Deletes the child `name` if `owner` controls it (by UID); anything else of that name
    /// is left alone. Whether it deleted one.
    pub(crate) async fn remove_controlled(&self, owner: &ObjectMeta, name: &str) -> Result<bool> {
        let key: ChildKey = (owner.namespace.clone(), name.to_string());
        let Some(meta) = self.observed(&key).await? else {
            return Ok(false);
        };
        let owner_uid = owner.uid.as_deref().unwrap_or_default();
        let ours = meta
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.controller == Some(true) && r.uid == owner_uid);
        if !ours {
            return Ok(false);
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: meta.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match self.api(key.0.as_deref()).delete(name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.records().remove(&key);
        Ok(true)
    }

    /// [`Self::apply_with`], noting the outcome as `Kind/name` in `changes`. A child refused
    /// for its name or by the API server is noted in `changes.refused` and the pass goes on:
    /// one refused child must not keep the others, or the status, from being written.
    pub(crate) async fn apply_noted_with<O>(
        &self,
        owner: &O,
        desired: K,
        foreign: Foreign,
        changes: &mut Changes,
    ) -> Result<()>
    where
        O: Resource<DynamicType = ()>,
    {
        let child = format!(
            "{}/{}",
            K::kind(&()),
            desired.meta().name.clone().unwrap_or_default()
        );
        match self.apply_with(owner, desired, foreign).await {
            Ok(applied) => changes.note(child, applied),
            Err(error) => match RefusedChild::from_error(child, &error) {
                Some(refused) => {
                    tracing::warn!(child = %refused.child, reason = refused.reason.as_str(), message = %refused.message, "child refused");
                    changes.refused.push(refused);
                }
                None => return Err(error),
            },
        }
        Ok(())
    }

    /// Drops the records of one owner's children (it was deleted).
    pub fn forget_owner(&self, owner_uid: &str) {
        self.records().retain(|_, r| r.owner_uid != owner_uid);
    }

    /// Drops the records of children whose owner is not in `live` (owner UIDs): the owner was
    /// deleted, so nothing of it is kept. Returns how many records went.
    pub fn retain_owners(&self, live: &std::collections::HashSet<String>) -> usize {
        let mut records = self.records();
        let before = records.len();
        records.retain(|_, r| live.contains(&r.owner_uid));
        before - records.len()
    }

    /// The `resourceVersion` of a child as the cache holds it (`None` when uncached or not
    /// there): lets a caller wait until the cache has seen a write.
    pub fn cached_resource_version(&self, namespace: Option<&str>, name: &str) -> Option<String> {
        let mut key = ObjectRef::<PartialObjectMeta<K>>::new(name);
        if let Some(ns) = namespace {
            key = key.within(ns);
        }
        self.cache
            .as_ref()?
            .get(&key)
            .and_then(|m| m.metadata.resource_version.clone())
    }

    /// How many children this process holds an apply record for (for memory accounting).
    pub fn recorded(&self) -> usize {
        self.records().len()
    }

    /// Waits until the metadata cache has its first full list (no-op when uncached).
    pub async fn wait_until_ready(&self) {
        if let Some(cache) = &self.cache
            && let Err(error) = crate::readiness::cache_filled(cache).await
        {
            tracing::warn!(%error, "child cache writer dropped before it was ready");
        }
    }
}
