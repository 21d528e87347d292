//! Server-side apply: field ownership per manager, conflicts, and removal of what a manager
//! stops applying.

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::fieldpath::{self};
use crate::managed;
use crate::registry::ResourceType;

use super::{Store, Written, meta_str, resource_name, scope_of, subresource_name};

impl Store {
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
}
