//! The object store and every rule a write goes through: resourceVersion, generation, the
//! status subresource, patches, server-side apply, finalizers, garbage collection, and the
//! event history watches replay from.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::error::{ApiError, Cause};
use crate::fieldpath::{self, Scope};
use crate::managed;
use crate::registry::{self, ResourceType};
use crate::schema;
use crate::selector::Selector;

mod apply;
mod crd;
mod gc;
mod patch;
mod validate;

use gc::finalizers;
pub use patch::PatchBody;

/// Namespaces a fresh cluster has.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];
const FOREGROUND: &str = "foregroundDeletion";
const MAX_GC_PASSES: usize = 64;
const ORPHAN: &str = "orphan";

/// Where an object is filed: `(group, plural, namespace, name)`; versions share storage.
type Key = (String, String, String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub kind: EventType,
    pub object: Value,
}

/// How a DELETE wants dependents handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// Parameters of a LIST.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub labels: Selector,
    pub fields: Selector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// What a write did: the object as stored, and whether anything changed.
#[derive(Clone, Debug)]
pub struct Written {
    pub object: Value,
    pub changed: bool,
}

#[derive(Debug, Clone)]
pub struct Store {
    types: Vec<ResourceType>,
    objects: BTreeMap<Key, Value>,
    rv: u64,
    uid_seq: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Every change with rv > this is still in `history`.
    history_floor: u64,
    changes: broadcast::Sender<Arc<Change>>,
    /// `(group, plural)` → every version an object of that resource was written as, in
    /// order: the audit trail a test reads when the object itself is gone.
    audited: HashMap<(String, String), Vec<Value>>,
    /// The garbage collector's graph, kept as objects are written: owner UID → the objects
    /// whose ownerReferences name it; UID → key of every object; and the deletions the
    /// collector must drive (foreground, orphan, terminating namespaces). With them a
    /// deletion costs work in its dependents, not in the size of the store.
    dependents: HashMap<String, BTreeSet<Key>>,
    uids: HashMap<String, Key>,
    driven: BTreeSet<Key>,
    /// Set while the collector runs: a deletion it makes does not start another run.
    collecting: bool,
    /// The mutating webhooks' patches for the write being made: applied to its object after
    /// the schema's defaults and before its validation, as the API server orders them.
    admission_patches: Vec<json_patch::Patch>,
    /// How each custom resource's versions convert, by `(group, plural)`.
    conversions: HashMap<(String, String), crate::conversion::Conversion>,
}

fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

/// Whether the collector must drive this object's deletion.
fn driven_deletion(key: &Key, obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
        && (key.1 == "namespaces"
            || finalizers(obj)
                .iter()
                .any(|f| *f == FOREGROUND || *f == ORPHAN))
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

fn resource_name(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.plural.clone()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    }
}

/// The object with `metadata` and `status` removed: what `generation` counts changes of.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

fn scope_of(rt: &ResourceType, subresource: Option<&str>) -> Scope {
    match subresource {
        Some("status") => Scope::Status,
        _ if rt.status_subresource => Scope::Main,
        _ => Scope::Whole,
    }
}

fn subresource_name(subresource: Option<&str>) -> &str {
    subresource.unwrap_or_default()
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (changes, _) = broadcast::channel(history_limit.max(16));
        let mut store = Self {
            types: registry::builtins(),
            objects: BTreeMap::new(),
            rv: 0,
            uid_seq: 0,
            history: VecDeque::new(),
            history_limit,
            history_floor: 0,
            changes,
            audited: HashMap::new(),
            dependents: HashMap::new(),
            uids: HashMap::new(),
            driven: BTreeSet::new(),
            collecting: false,
            admission_patches: Vec::new(),
            conversions: HashMap::new(),
        };
        for ns in INITIAL_NAMESPACES {
            let rt = store.types[0].clone();
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            if let Err(e) = store.create(&rt, "", body, "testkit") {
                tracing::error!(error = %e, "creating initial namespace");
            }
        }
        store
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The kind served at `group/version` under `plural`.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// A copy to run a `dryRun` request on: the same objects and counters, and nobody listening
    /// (no watch, history or audit entry comes of what is done to it).
    pub fn scratch(&self) -> Self {
        Self {
            types: self.types.clone(),
            objects: self.objects.clone(),
            rv: self.rv,
            uid_seq: self.uid_seq,
            history: VecDeque::new(),
            history_limit: self.history_limit,
            history_floor: self.rv,
            changes: broadcast::channel(16).0,
            audited: HashMap::new(),
            dependents: self.dependents.clone(),
            uids: self.uids.clone(),
            driven: self.driven.clone(),
            collecting: false,
            admission_patches: self.admission_patches.clone(),
            conversions: self.conversions.clone(),
        }
    }

    /// Starts keeping every written version of the objects of a resource.
    pub fn audit(&mut self, group: &str, plural: &str) {
        self.audited
            .entry((group.to_string(), plural.to_string()))
            .or_default();
    }

    /// Every version written since [`Self::audit`] started for the resource.
    pub fn audit_trail(&self, group: &str, plural: &str) -> Vec<Value> {
        self.audited
            .get(&(group.to_string(), plural.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    /// Changes after `rv` for a kind, or `410 Gone` when they are older than the history kept.
    pub fn changes_since(&self, rt: &ResourceType, rv: u64) -> Result<Vec<Arc<Change>>, ApiError> {
        if rv < self.history_floor {
            return Err(ApiError::gone(format!(
                "too old resource version: {rv} ({})",
                self.history_floor + 1
            )));
        }
        Ok(self
            .history
            .iter()
            .filter(|c| c.rv > rv && c.group == rt.group && c.plural == rt.plural)
            .cloned()
            .collect())
    }

    fn key(rt: &ResourceType, namespace: &str, name: &str) -> Key {
        let ns = if rt.namespaced { namespace } else { "" };
        (rt.group.clone(), rt.plural.clone(), ns.into(), name.into())
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, rt: &ResourceType, kind: EventType, object: &Value) {
        let change = Arc::new(Change {
            rv: self.rv,
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            namespace: meta_str(object, "namespace").into(),
            kind,
            object: object.clone(),
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.history_floor = old.rv;
            }
        }
        if let Some(trail) = self.audited.get_mut(&(rt.group.clone(), rt.plural.clone())) {
            trail.push(object.clone());
        }
        // No receivers is fine: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// Serves the object at the version the client asked for (storage is shared).
    fn present(rt: &ResourceType, obj: &Value) -> Value {
        let mut v = obj.clone();
        v["apiVersion"] = json!(rt.api_version());
        v["kind"] = json!(rt.kind);
        v
    }

    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(rt, namespace, name))
            .map(|o| Self::present(rt, o))
            .ok_or_else(|| ApiError::not_found(&resource_name(rt), name))
    }

    /// Lists a kind, optionally in one namespace; returns the items and a continue token.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<(Vec<Value>, Option<String>), ApiError> {
        let after = opts.continue_token.as_deref().unwrap_or_default();
        let mut items = Vec::new();
        let mut more = None;
        for ((group, plural, ns, name), obj) in &self.objects {
            if *group != rt.group || *plural != rt.plural {
                continue;
            }
            if namespace.is_some_and(|want| want != ns) {
                continue;
            }
            let position = format!("{ns}/{name}");
            if !after.is_empty() && position.as_str() <= after {
                continue;
            }
            if !opts.labels.matches_labels(&obj["metadata"]["labels"])
                || !opts.fields.matches_fields(obj, rt.selectable_fields())?
            {
                continue;
            }
            if opts
                .limit
                .is_some_and(|limit| limit > 0 && items.len() >= limit)
            {
                more = items.last().map(|last: &Value| {
                    format!("{}/{}", meta_str(last, "namespace"), meta_str(last, "name"))
                });
                break;
            }
            items.push(Self::present(rt, obj));
        }
        Ok((items, more))
    }

    /// How a request in `rt`'s version converts, when that is not the storage version; and
    /// the storage version's kind.
    pub(crate) fn conversion_for(
        &self,
        rt: &ResourceType,
    ) -> Option<(crate::conversion::Conversion, ResourceType)> {
        let conversion = self
            .conversions
            .get(&(rt.group.clone(), rt.plural.clone()))?;
        if conversion.storage_version == rt.version {
            return None;
        }
        let storage = self.types.iter().find(|t| {
            t.group == rt.group && t.plural == rt.plural && t.version == conversion.storage_version
        })?;
        Some((conversion.clone(), storage.clone()))
    }

    /// Every stored object of `group`/`plural`, in any namespace.
    pub(crate) fn all_of(&self, group: &str, plural: &str) -> Vec<Value> {
        let start = (
            group.to_string(),
            plural.to_string(),
            String::new(),
            String::new(),
        );
        self.objects
            .range(start..)
            .take_while(|((g, p, _, _), _)| g == group && p == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The labels of namespace `name` (`null` when there is none).
    pub(crate) fn namespace_labels(&self, name: &str) -> Value {
        self.objects
            .get(&(
                String::new(),
                "namespaces".into(),
                String::new(),
                name.into(),
            ))
            .map_or(Value::Null, |ns| ns["metadata"]["labels"].clone())
    }

    fn namespace_exists(&self, namespace: &str) -> bool {
        self.objects.contains_key(&(
            String::new(),
            "namespaces".into(),
            String::new(),
            namespace.into(),
        ))
    }

    /// Stores `obj` at `key`, keeping the collector's graph current.
    fn put(&mut self, key: Key, obj: Value) {
        if let Some(old) = self.objects.remove(&key) {
            self.unindex(&key, &old);
        }
        let uid = meta_str(&obj, "uid").to_string();
        if !uid.is_empty() {
            self.uids.insert(uid, key.clone());
        }
        for owner in owner_uids(&obj) {
            self.dependents
                .entry(owner.to_string())
                .or_default()
                .insert(key.clone());
        }
        if driven_deletion(&key, &obj) {
            self.driven.insert(key.clone());
        }
        self.objects.insert(key, obj);
    }

    /// Removes the object at `key`, keeping the collector's graph current.
    fn take(&mut self, key: &Key) -> Option<Value> {
        let obj = self.objects.remove(key)?;
        self.unindex(key, &obj);
        Some(obj)
    }

    fn unindex(&mut self, key: &Key, obj: &Value) {
        let uid = meta_str(obj, "uid");
        if self.uids.get(uid) == Some(key) {
            self.uids.remove(uid);
        }
        for owner in owner_uids(obj) {
            if let Some(keys) = self.dependents.get_mut(owner) {
                keys.remove(key);
                if keys.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
        self.driven.remove(key);
    }

    fn namespace_terminating(&self, namespace: &str) -> bool {
        self.objects
            .get(&(
                String::new(),
                "namespaces".into(),
                String::new(),
                namespace.into(),
            ))
            .is_some_and(|ns| ns["metadata"]["deletionTimestamp"].is_string())
    }

    fn check_type(rt: &ResourceType, body: &Value) -> Result<(), ApiError> {
        let kind = body["kind"].as_str().unwrap_or(&rt.kind);
        let api_version = body["apiVersion"].as_str().map(String::from);
        if kind != rt.kind || api_version.is_some_and(|v| v != rt.api_version()) {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                body["apiVersion"].as_str().unwrap_or_default(),
                rt.api_version()
            )));
        }
        Ok(())
    }

    /// The mutating webhooks' patches for the next write ([`Self::conform`] takes them).
    pub(crate) fn admit_with(&mut self, patches: Vec<json_patch::Patch>) {
        self.admission_patches = patches;
    }

    /// Prunes, defaults and validates a custom resource against its CRD's schema, with the
    /// mutating webhooks' patches applied after the defaults; `old` is the stored object on
    /// an update, for the schema's transition rules.
    fn conform(
        &mut self,
        rt: &ResourceType,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        if rt.kind == "Secret" && rt.group.is_empty() {
            fold_string_data(obj);
        }
        let causes = validate::object_meta_and_size(rt, obj).map_err(|why| {
            ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: {why}",
                rt.kind, rt.version, rt.kind
            ))
        })?;
        if !causes.is_empty() {
            let kind = if rt.group.is_empty() {
                rt.kind.clone()
            } else {
                format!("{}.{}", rt.kind, rt.group)
            };
            return Err(ApiError::invalid(&kind, meta_str(obj, "name"), causes));
        }
        let patches = std::mem::take(&mut self.admission_patches);
        let Some(openapi) = &rt.schema else {
            return Self::patched(obj, patches);
        };
        schema::prune_and_default(obj, openapi);
        if !patches.is_empty() {
            Self::patched(obj, patches)?;
            schema::prune_and_default(obj, openapi);
        }
        let causes = schema::validate(obj, openapi, old);
        if causes.is_empty() {
            return Ok(());
        }
        let kind = format!("{}.{}", rt.kind, rt.group);
        Err(ApiError::invalid(&kind, meta_str(obj, "name"), causes))
    }

    fn patched(obj: &mut Value, patches: Vec<json_patch::Patch>) -> Result<(), ApiError> {
        for patch in patches {
            json_patch::patch(obj, &patch).map_err(|e| {
                ApiError::internal(format!("a mutating webhook's patch does not apply: {e}"))
            })?;
        }
        Ok(())
    }

    /// POST: a new object.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        body: Value,
        manager: &str,
    ) -> Result<Written, ApiError> {
        self.insert_new(rt, namespace, body, manager, "Update")
    }

    fn insert_new(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        mut body: Value,
        manager: &str,
        operation: &str,
    ) -> Result<Written, ApiError> {
        Self::check_type(rt, &body)?;
        if !body["metadata"].is_object() {
            body["metadata"] = json!({});
        }
        let body_ns = meta_str(&body, "namespace").to_string();
        if rt.namespaced && !body_ns.is_empty() && body_ns != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let mut name = meta_str(&body, "name").to_string();
        if name.is_empty() {
            let prefix = meta_str(&body, "generateName");
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &rt.kind,
                    "",
                    vec![Cause {
                        field: "metadata.name".into(),
                        message: "Required value: name or generateName is required".into(),
                    }],
                ));
            }
            name = format!("{prefix}{:05x}", (self.uid_seq * 7919 + 12345) % 0xfffff);
        }
        if rt.namespaced && !self.namespace_exists(namespace) {
            return Err(ApiError::not_found("namespaces", namespace));
        }
        // NamespaceLifecycle admission: nothing new, Events included, in a namespace that is
        // being deleted (updates and deletes still go through).
        if rt.namespaced && self.namespace_terminating(namespace) {
            return Err(ApiError::forbidden(
                &resource_name(rt),
                &name,
                &format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                ),
            ));
        }
        let key = Self::key(rt, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&resource_name(rt), &name));
        }
        if rt.status_subresource
            && let Some(m) = body.as_object_mut()
        {
            m.remove("status");
        }
        self.uid_seq += 1;
        let rv = self.next_rv();
        {
            let meta = body["metadata"]
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
            for f in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
            ] {
                meta.remove(f);
            }
            meta.insert("name".into(), json!(name));
            if rt.namespaced {
                meta.insert("namespace".into(), json!(namespace));
            } else {
                meta.remove("namespace");
            }
            meta.insert(
                "uid".into(),
                json!(format!("00000000-0000-4000-8000-{:012x}", self.uid_seq)),
            );
            meta.insert("creationTimestamp".into(), json!(managed::now()));
            if rt.generation {
                meta.insert("generation".into(), json!(1));
            } else {
                meta.remove("generation");
            }
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        body["apiVersion"] = json!(rt.api_version());
        body["kind"] = json!(rt.kind);
        if rt.kind == "Namespace" {
            body["status"] = json!({"phase": "Active"});
            // As the API server labels every namespace (1.21 and later): what namespace
            // selectors match on.
            body["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        if rt.kind == "CustomResourceDefinition" {
            self.install_crd(&mut body)?;
        }
        self.conform(rt, &mut body, None)?;
        let scope = scope_of(rt, None);
        let fields = fieldpath::fields_of(&body, &rt.lists, scope);
        let mut entries = Vec::new();
        managed::set_entry(
            &mut entries,
            manager,
            operation,
            "",
            &rt.api_version(),
            fields,
        );
        managed::write(&mut body, &entries);
        self.put(key, body.clone());
        self.record(rt, EventType::Added, &body);
        Ok(Written {
            object: body,
            changed: true,
        })
    }

    /// Commits `new` in place of `old`: keeps what the server owns, bumps generation when the
    /// spec part changed, and does nothing at all when nothing changed.
    fn commit(
        &mut self,
        rt: &ResourceType,
        old: &Value,
        mut new: Value,
    ) -> Result<Written, ApiError> {
        let name = meta_str(old, "name").to_string();
        // A write that names another UID is refused, as on a real server (the UID is
        // immutable): it applies only to that object, never to one recreated under its name.
        let (old_uid, new_uid) = (meta_str(old, "uid"), meta_str(&new, "uid"));
        if !new_uid.is_empty() && new_uid != old_uid {
            return Err(ApiError::invalid(
                &rt.kind,
                &name,
                vec![Cause {
                    field: "metadata.uid".into(),
                    message: format!("Invalid value: {new_uid:?}: field is immutable"),
                }],
            ));
        }
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old["metadata"].get(f) {
                Some(v) => new["metadata"][f] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(f);
                    }
                }
            }
        }
        new["apiVersion"] = old["apiVersion"].clone();
        new["kind"] = old["kind"].clone();
        if let Some(m) = new["metadata"].as_object_mut() {
            for empty in ["labels", "annotations", "finalizers", "ownerReferences"] {
                if m.get(empty).is_some_and(|v| {
                    v.is_null()
                        || v.as_object().is_some_and(Map::is_empty)
                        || v.as_array().is_some_and(Vec::is_empty)
                }) {
                    m.remove(empty);
                }
            }
        }
        if old["metadata"]["deletionTimestamp"].is_string() {
            let before: HashSet<&str> = finalizers(old).into_iter().collect();
            if let Some(added) = finalizers(&new).into_iter().find(|f| !before.contains(f)) {
                return Err(ApiError::invalid(
                    &rt.kind,
                    &name,
                    vec![Cause {
                        field: "metadata.finalizers".into(),
                        message: format!(
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [\"{added}\"]"
                        ),
                    }],
                ));
            }
        }
        self.conform(rt, &mut new, Some(old))?;
        if rt.generation && spec_part(old) != spec_part(&new) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        if managed::without_times(old) == managed::without_times(&new) {
            return Ok(Written {
                object: old.clone(),
                changed: false,
            });
        }
        if rt.kind == "CustomResourceDefinition" {
            self.install_crd(&mut new)?;
        }
        let rv = self.next_rv();
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = Self::key(rt, meta_str(old, "namespace"), &name);
        if new["metadata"]["deletionTimestamp"].is_string() && finalizers(&new).is_empty() {
            self.take(&key);
            self.record(rt, EventType::Deleted, &new);
            self.collect_garbage();
        } else {
            self.put(key, new.clone());
            self.record(rt, EventType::Modified, &new);
        }
        Ok(Written {
            object: Self::present(rt, &new),
            changed: true,
        })
    }

    fn existing(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(rt, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&resource_name(rt), name))
    }

    /// Restricts a write to its part of the object: a write to the main resource keeps the
    /// stored status; a write to `/status` changes only the status.
    fn scoped(rt: &ResourceType, old: &Value, mut new: Value, subresource: Option<&str>) -> Value {
        match subresource {
            Some("status") => {
                let mut v = old.clone();
                match new.as_object_mut().and_then(|m| m.remove("status")) {
                    Some(status) => v["status"] = status,
                    None => {
                        if let Some(m) = v.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                v
            }
            _ if rt.status_subresource => {
                match old.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                new
            }
            _ => new,
        }
    }

    /// PUT, merge patch and JSON patch all end here: an Update by `manager`.
    fn update_from(
        &mut self,
        rt: &ResourceType,
        old: Value,
        new: Value,
        subresource: Option<&str>,
        manager: &str,
    ) -> Result<Written, ApiError> {
        let name = meta_str(&old, "name").to_string();
        let sent_rv = meta_str(&new, "resourceVersion");
        if !sent_rv.is_empty() && sent_rv != meta_str(&old, "resourceVersion") {
            return Err(ApiError::conflict(
                &resource_name(rt),
                &name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        Self::check_type(rt, &new)?;
        let mut new = Self::scoped(rt, &old, new, subresource);
        let scope = scope_of(rt, subresource);
        let mut entries = managed::read(&old);
        managed::record_update(
            &mut entries,
            managed::Writer {
                manager,
                subresource: subresource_name(subresource),
                api_version: &rt.api_version(),
            },
            &fieldpath::fields_of(&old, &rt.lists, scope),
            &fieldpath::fields_of(&new, &rt.lists, scope),
            &old,
            &new,
        );
        managed::write(&mut new, &entries);
        self.commit(rt, &old, new)
    }

    /// PUT.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        body: Value,
        subresource: Option<&str>,
        manager: &str,
    ) -> Result<Written, ApiError> {
        let old = self.existing(rt, namespace, name)?;
        self.update_from(rt, old, body, subresource, manager)
    }
}

/// A Secret's `stringData`, written into `data` base64-encoded (over `data`'s keys of the same
/// name) and never stored, as the API server does.
fn fold_string_data(secret: &mut Value) {
    let Some(Value::Object(strings)) = secret.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    for (key, value) in strings {
        let text = value.as_str().unwrap_or_default();
        secret["data"][key] = json!(base64(text.as_bytes()));
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn string_data_is_stored_as_base64_data() {
        let mut secret = json!({"kind": "Secret", "data": {"a": "eA=="}, "stringData": {"b": "placeholder", "c": "ab"}});
        fold_string_data(&mut secret);
        assert_eq!(
            secret,
            json!({"kind": "Secret", "data": {"a": "eA==", "b": "cGxhY2Vob2xkZXI=", "c": "YWI="}})
        );
    }
}
