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

    /// Prunes, defaults and validates a custom resource against its CRD's schema.
    fn conform(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
        let Some(openapi) = &rt.schema else {
            return Ok(());
        };
        schema::prune_and_default(obj, openapi);
        let causes = schema::validate(obj, openapi);
        if causes.is_empty() {
            return Ok(());
        }
        let kind = format!("{}.{}", rt.kind, rt.group);
        Err(ApiError::invalid(&kind, meta_str(obj, "name"), causes))
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
        }
        if rt.kind == "CustomResourceDefinition" {
            self.install_crd(&mut body)?;
        }
        Self::conform(rt, &mut body)?;
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

    /// Validates a CRD's schema is structural enough to serve, makes its kinds servable and
    /// reports it Established, as the apiextensions controller would.
    fn install_crd(&mut self, crd: &mut Value) -> Result<(), ApiError> {
        let name = meta_str(crd, "name").to_string();
        let new_types = registry::from_crd(crd);
        let causes: Vec<Cause> = new_types
            .iter()
            .filter_map(|t| t.schema.as_ref())
            .flat_map(schema::structural_violations)
            .collect();
        if !causes.is_empty() {
            return Err(ApiError::invalid("CustomResourceDefinition", &name, causes));
        }
        if new_types.is_empty() {
            return Err(ApiError::invalid(
                "CustomResourceDefinition",
                &name,
                vec![Cause {
                    field: "spec.versions".into(),
                    message: "Invalid value: must have exactly one version marked as storage version and at least one served".into(),
                }],
            ));
        }
        let expected = format!(
            "{}.{}",
            crd["spec"]["names"]["plural"].as_str().unwrap_or_default(),
            crd["spec"]["group"].as_str().unwrap_or_default()
        );
        if name != expected {
            return Err(ApiError::invalid(
                "CustomResourceDefinition",
                &name,
                vec![Cause {
                    field: "metadata.name".into(),
                    message: format!(
                        "Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
                    ),
                }],
            ));
        }
        for t in new_types {
            self.types.retain(|old| {
                !(old.group == t.group && old.version == t.version && old.plural == t.plural)
            });
            self.types.push(t);
        }
        let now = managed::now();
        crd["status"] = json!({
            "acceptedNames": crd["spec"]["names"],
            "storedVersions": crd["spec"]["versions"].as_array().into_iter().flatten()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .map(|v| v["name"].clone()).collect::<Vec<_>>(),
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
            ],
        });
        Ok(())
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
        Self::conform(rt, &mut new)?;
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

    /// PATCH with `application/apply-patch+yaml`: server-side apply.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        applied: Value,
        subresource: Option<&str>,
        manager: &str,
        force: bool,
    ) -> Result<Written, ApiError> {
        if manager.is_empty() {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requires fieldManager",
            ));
        }
        if applied["apiVersion"].as_str().is_none() || applied["kind"].as_str().is_none() {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in an applied configuration",
            ));
        }
        Self::check_type(rt, &applied)?;
        let applied_name = meta_str(&applied, "name");
        if !applied_name.is_empty() && applied_name != name {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        let old = match self.objects.get(&Self::key(rt, namespace, name)) {
            Some(o) => o.clone(),
            None if subresource.is_some() => {
                return Err(ApiError::not_found(&resource_name(rt), name));
            }
            None => {
                let mut body = applied;
                body["metadata"]["name"] = json!(name);
                return self.insert_new(rt, namespace, body, manager, "Apply");
            }
        };
        let scope = scope_of(rt, subresource);
        let sub = subresource_name(subresource);
        let applied = Self::scoped(rt, &Value::Object(Map::new()), applied, subresource);
        let applied_fields = fieldpath::fields_of(&applied, &rt.lists, scope);
        let mut entries = managed::read(&old);

        let mut conflicts = Vec::new();
        for leaf in fieldpath::leaves(&applied_fields) {
            if leaf.last().map(String::as_str) == Some(".") {
                continue;
            }
            if fieldpath::value_at(&old, &leaf) == fieldpath::value_at(&applied, &leaf) {
                continue;
            }
            for e in entries
                .iter_mut()
                .filter(|e| e.subresource == sub && !e.is(manager, "Apply", sub))
            {
                if fieldpath::contains_prefix(&e.fields, &leaf) {
                    if force {
                        fieldpath::remove(&mut e.fields, &leaf);
                        e.time = managed::now();
                    } else {
                        conflicts.push(format!(
                            "conflict with \"{}\" using {}: .{}",
                            e.manager,
                            e.api_version,
                            leaf.iter()
                                .map(|p| p.trim_start_matches("f:"))
                                .collect::<Vec<_>>()
                                .join(".")
                        ));
                    }
                }
            }
        }
        if !conflicts.is_empty() {
            return Err(ApiError::apply_conflict(format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                conflicts.join("; ")
            )));
        }

        let mut new = old.clone();
        fieldpath::merge_applied(&mut new, &applied, &rt.lists);
        let previous = entries
            .iter()
            .find(|e| e.is(manager, "Apply", sub))
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        for leaf in fieldpath::leaves(&previous) {
            let owned_now = fieldpath::contains_prefix(&applied_fields, &leaf);
            let target = if leaf.last().map(String::as_str) == Some(".") {
                &leaf[..leaf.len() - 1]
            } else {
                &leaf[..]
            };
            let owned_by_others = entries
                .iter()
                .filter(|e| e.subresource == sub && !e.is(manager, "Apply", sub))
                .any(|e| fieldpath::contains_prefix(&e.fields, target));
            if !owned_now && !owned_by_others {
                fieldpath::remove_value(&mut new, &leaf);
            }
        }
        managed::set_entry(
            &mut entries,
            manager,
            "Apply",
            sub,
            &rt.api_version(),
            applied_fields,
        );
        managed::write(&mut new, &entries);
        self.commit(rt, &old, new)
    }

    /// DELETE of one object.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Written, ApiError> {
        let old = self.existing(rt, namespace, name)?;
        if opts
            .uid
            .as_deref()
            .is_some_and(|uid| uid != meta_str(&old, "uid"))
        {
            return Err(ApiError::conflict(
                &resource_name(rt),
                name,
                "Precondition failed: UID in precondition does not match the UID in record. The object might have been deleted and then recreated",
            ));
        }
        if opts
            .resource_version
            .as_deref()
            .is_some_and(|rv| rv != meta_str(&old, "resourceVersion"))
        {
            return Err(ApiError::conflict(
                &resource_name(rt),
                name,
                "Precondition failed: ResourceVersion in precondition does not match the ResourceVersion in record. The object might have been modified",
            ));
        }
        let mut new = old.clone();
        match opts.propagation {
            Some(Propagation::Foreground) => add_finalizer(&mut new, FOREGROUND),
            Some(Propagation::Orphan) => add_finalizer(&mut new, ORPHAN),
            _ => {}
        }
        // A namespace stays Terminating until the namespace controller has emptied it.
        let namespace_in_use = rt.kind == "Namespace" && self.objects.keys().any(|k| k.2 == name);
        if finalizers(&new).is_empty() && !namespace_in_use {
            let key = Self::key(rt, namespace, name);
            self.remove_now(rt, &key, new.clone());
            self.collect_garbage();
            return Ok(Written {
                object: Self::present(rt, &new),
                changed: true,
            });
        }
        if !new["metadata"]["deletionTimestamp"].is_string() {
            new["metadata"]["deletionTimestamp"] = json!(managed::now());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        if rt.kind == "Namespace" {
            new["status"]["phase"] = json!("Terminating");
        }
        let rv = self.next_rv();
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = Self::key(rt, namespace, name);
        self.put(key, new.clone());
        self.record(rt, EventType::Modified, &new);
        self.collect_garbage();
        Ok(Written {
            object: Self::present(rt, &new),
            changed: true,
        })
    }

    fn remove_now(&mut self, rt: &ResourceType, key: &Key, mut last: Value) {
        self.take(key);
        let rv = self.next_rv();
        last["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record(rt, EventType::Deleted, &last);
    }

    /// DELETE of a collection: every object the selectors match.
    pub fn delete_collection(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        opts: &ListOptions,
        delete: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let (items, _) = self.list(rt, namespace, opts)?;
        let mut deleted = Vec::new();
        for item in items {
            let written = self.delete(
                rt,
                meta_str(&item, "namespace"),
                meta_str(&item, "name"),
                delete,
            )?;
            deleted.push(written.object);
        }
        Ok(deleted)
    }

    fn type_of_key(&self, key: &Key) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == key.0 && t.plural == key.1)
            .cloned()
    }

    /// The garbage collector and namespace controller, run to a fixed point after every
    /// deletion: dependents of deleted owners go (or lose the reference when other owners
    /// remain), foreground deletions finish once their dependents are gone, orphaning
    /// deletions release their dependents, and terminating namespaces empty out.
    fn collect_garbage(&mut self) {
        if self.collecting {
            return;
        }
        self.collecting = true;
        // A fixed point is reached in a few passes; the bound only stops a write the store
        // keeps refusing (an object its schema now rejects) from spinning under the lock.
        for _ in 0..MAX_GC_PASSES {
            let progressed = if self.driven.is_empty() {
                self.collect_dangling()
            } else {
                self.collect_full()
            };
            if !progressed {
                break;
            }
        }
        self.collecting = false;
    }

    /// The common case, with no foreground, orphan or namespace deletion under way: only the
    /// dependents of owners that are gone need looking at. Returns whether it changed
    /// anything.
    fn collect_dangling(&mut self) -> bool {
        let affected: BTreeSet<Key> = self
            .dependents
            .iter()
            .filter(|(owner, _)| !self.uids.contains_key(*owner))
            .flat_map(|(_, keys)| keys.iter().cloned())
            .collect();
        let mut progressed = false;
        for key in affected {
            let Some(obj) = self.objects.get(&key).cloned() else {
                continue;
            };
            let Some(rt) = self.type_of_key(&key) else {
                continue;
            };
            let refs = obj["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let live: Vec<Value> = refs
                .iter()
                .filter(|r| {
                    self.uids
                        .contains_key(r["uid"].as_str().unwrap_or_default())
                })
                .cloned()
                .collect();
            if live.is_empty() {
                if !obj["metadata"]["deletionTimestamp"].is_string() {
                    if let Err(e) = self.delete(&rt, &key.2, &key.3, &DeleteOptions::default()) {
                        tracing::warn!(error = %e, "garbage collector delete");
                    }
                    progressed = true;
                }
            } else if live.len() != refs.len() {
                let mut v = obj.clone();
                v["metadata"]["ownerReferences"] = Value::Array(live);
                if let Err(e) = self.commit(&rt, &obj, v) {
                    tracing::warn!(error = %e, "garbage collector update");
                }
                progressed = true;
            }
        }
        progressed
    }

    /// Every rule over the whole store: for foreground and orphan deletions and namespaces
    /// being emptied. Returns whether it changed anything.
    fn collect_full(&mut self) -> bool {
        {
            let live: HashMap<String, (Key, bool)> = self
                .objects
                .iter()
                .map(|(k, o)| {
                    let deleting_foreground = o["metadata"]["deletionTimestamp"].is_string()
                        && finalizers(o).contains(&FOREGROUND);
                    (
                        meta_str(o, "uid").to_string(),
                        (k.clone(), deleting_foreground),
                    )
                })
                .collect();
            let orphaning: HashSet<String> = self
                .objects
                .values()
                .filter(|o| {
                    o["metadata"]["deletionTimestamp"].is_string()
                        && finalizers(o).contains(&ORPHAN)
                })
                .map(|o| meta_str(o, "uid").to_string())
                .collect();
            let mut to_delete: Vec<Key> = Vec::new();
            let mut to_rewrite: Vec<(Key, Value)> = Vec::new();
            let mut has_dependents: HashSet<String> = HashSet::new();
            let mut emptied_namespaces: Vec<Key> = Vec::new();

            for (key, obj) in &self.objects {
                let refs = obj["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if refs.is_empty() {
                    continue;
                }
                let mut live_refs = Vec::new();
                let mut dangling = 0;
                let mut owner_foreground = false;
                for r in &refs {
                    let uid = r["uid"].as_str().unwrap_or_default();
                    if orphaning.contains(uid) {
                        continue;
                    }
                    match live.get(uid) {
                        Some((_, fg)) => {
                            owner_foreground |= *fg;
                            has_dependents.insert(uid.to_string());
                            live_refs.push(r.clone());
                        }
                        None => dangling += 1,
                    }
                }
                let deleting = obj["metadata"]["deletionTimestamp"].is_string();
                let every_owner_gone = live_refs.is_empty() && dangling > 0;
                if owner_foreground || every_owner_gone {
                    if !deleting {
                        to_delete.push(key.clone());
                    }
                } else if live_refs.len() != refs.len() {
                    let mut v = obj.clone();
                    v["metadata"]["ownerReferences"] = Value::Array(live_refs);
                    to_rewrite.push((key.clone(), v));
                }
            }
            // Foreground and orphan deletions finish once their dependents are handled.
            for (key, obj) in &self.objects {
                if !obj["metadata"]["deletionTimestamp"].is_string() {
                    continue;
                }
                let uid = meta_str(obj, "uid");
                let f = finalizers(obj);
                let releasable = (f.contains(&FOREGROUND) && !has_dependents.contains(uid))
                    || (f.contains(&ORPHAN) && !self.objects.values().any(|o| refs_uid(o, uid)));
                if releasable {
                    let mut v = obj.clone();
                    if let Some(list) = v["metadata"]["finalizers"].as_array_mut() {
                        list.retain(|x| x != FOREGROUND && x != ORPHAN);
                    }
                    to_rewrite.push((key.clone(), v));
                }
            }
            // Terminating namespaces: delete what is in them, then the namespace.
            for (key, obj) in &self.objects {
                if key.1 != "namespaces" || !obj["metadata"]["deletionTimestamp"].is_string() {
                    continue;
                }
                let ns = &key.3;
                let contents: Vec<&Key> = self.objects.keys().filter(|k| k.2 == *ns).collect();
                if contents.is_empty() {
                    if finalizers(obj).is_empty() {
                        emptied_namespaces.push(key.clone());
                    }
                } else {
                    to_delete.extend(
                        contents
                            .into_iter()
                            .filter(|k| {
                                !self.objects[*k]["metadata"]["deletionTimestamp"].is_string()
                            })
                            .cloned(),
                    );
                }
            }
            if to_delete.is_empty() && to_rewrite.is_empty() && emptied_namespaces.is_empty() {
                return false;
            }
            for key in emptied_namespaces {
                if let (Some(rt), Some(last)) =
                    (self.type_of_key(&key), self.objects.get(&key).cloned())
                {
                    self.remove_now(&rt, &key, last);
                }
            }
            for (key, v) in to_rewrite {
                let Some(rt) = self.type_of_key(&key) else {
                    continue;
                };
                if let Some(old) = self.objects.get(&key).cloned()
                    && let Err(e) = self.commit(&rt, &old, v)
                {
                    tracing::warn!(error = %e, "garbage collector update");
                }
            }
            for key in to_delete {
                let Some(rt) = self.type_of_key(&key) else {
                    continue;
                };
                if self.objects.contains_key(&key)
                    && let Err(e) = self.delete(&rt, &key.2, &key.3, &DeleteOptions::default())
                {
                    tracing::warn!(error = %e, "garbage collector delete");
                }
            }
        }
        true
    }
}

fn refs_uid(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

fn finalizers(obj: &Value) -> Vec<&str> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn add_finalizer(obj: &mut Value, name: &str) {
    if finalizers(obj).contains(&name) {
        return;
    }
    match obj["metadata"]["finalizers"].as_array_mut() {
        Some(list) => list.push(json!(name)),
        None => obj["metadata"]["finalizers"] = json!([name]),
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
fn strategic_merge(target: &mut Value, patch: &Value, rt: &ResourceType) {
    let mut nulls_removed = target.clone();
    json_patch::merge(&mut nulls_removed, &strip_lists(patch));
    fieldpath::merge_applied(&mut nulls_removed, &only_lists(patch), &rt.lists);
    *target = nulls_removed;
}

fn strip_lists(v: &Value) -> Value {
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

fn only_lists(v: &Value) -> Value {
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
fn apply_json_patch(target: &mut Value, ops: Vec<Value>) -> Result<(), ApiError> {
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
