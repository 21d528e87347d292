//! Deletion: finalizers, propagation (background, foreground, orphan) and the garbage
//! collector that follows owner references.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::managed;
use crate::registry::ResourceType;

use super::{
    DeleteOptions, EventType, FOREGROUND, Key, ListOptions, MAX_GC_PASSES, ORPHAN, Propagation,
    Store, Written, meta_str, resource_name,
};

impl Store {
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

    pub(super) fn remove_now(&mut self, rt: &ResourceType, key: &Key, mut last: Value) {
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

    pub(super) fn type_of_key(&self, key: &Key) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == key.0 && t.plural == key.1)
            .cloned()
    }

    /// The garbage collector and namespace controller, run to a fixed point after every
    /// deletion: dependents of deleted owners go (or lose the reference when other owners
    /// remain), foreground deletions finish once their dependents are gone, orphaning
    /// deletions release their dependents, and terminating namespaces empty out.
    pub(super) fn collect_garbage(&mut self) {
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
    pub(super) fn collect_dangling(&mut self) -> bool {
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

    // Over 120 lines on purpose: the garbage collector's rules in the order the real one
    // applies them (orphans, foreground, namespaces); each rule is a block of a few lines.
    /// Every rule over the whole store: for foreground and orphan deletions and namespaces
    /// being emptied. Returns whether it changed anything.
    pub(super) fn collect_full(&mut self) -> bool {
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

pub(super) fn refs_uid(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

pub(super) fn finalizers(obj: &Value) -> Vec<&str> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

pub(super) fn add_finalizer(obj: &mut Value, name: &str) {
    if finalizers(obj).contains(&name) {
        return;
    }
    match obj["metadata"]["finalizers"].as_array_mut() {
        Some(list) => list.push(json!(name)),
        None => obj["metadata"]["finalizers"] = json!([name]),
    }
}
