//! `metadata.managedFields`: who owns which fields, read from and written back to an object.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::fieldpath::{self, FieldSet};

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

impl Entry {
    pub fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

pub fn read(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().into(),
            operation: e["operation"].as_str().unwrap_or_default().into(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
            time: e["time"].as_str().unwrap_or_default().into(),
            subresource: e["subresource"].as_str().unwrap_or_default().into(),
            fields: e["fieldsV1"].as_object().cloned().unwrap_or_default(),
        })
        .collect()
}

pub fn write(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": Value::Object(e.fields.clone()),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Sets one manager's entry to `fields`, touching its time only when its fields changed.
pub fn set_entry(
    entries: &mut Vec<Entry>,
    manager: &str,
    operation: &str,
    subresource: &str,
    api_version: &str,
    fields: FieldSet,
) {
    match entries
        .iter_mut()
        .find(|e| e.is(manager, operation, subresource))
    {
        Some(e) if e.fields == fields => {}
        Some(e) => {
            e.fields = fields;
            e.time = now();
            e.api_version = api_version.into();
        }
        None => entries.push(Entry {
            manager: manager.into(),
            operation: operation.into(),
            api_version: api_version.into(),
            time: now(),
            subresource: subresource.into(),
            fields,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
}

pub fn now() -> String {
    Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map_or_else(|_| Timestamp::now().to_string(), |t| t.to_string())
}

/// Who makes a write, and through which API version and subresource.
#[derive(Clone, Copy, Debug)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub subresource: &'a str,
    pub api_version: &'a str,
}

/// Records an Update-style write (create, PUT, merge or JSON patch) by `writer`: the fields
/// it changed become its own and leave every other manager; fields it removed leave everyone.
pub fn record_update(
    entries: &mut Vec<Entry>,
    writer: Writer<'_>,
    old_fields: &FieldSet,
    new_fields: &FieldSet,
    old: &Value,
    new: &Value,
) {
    let Writer {
        manager,
        subresource,
        api_version,
    } = writer;
    let changed: Vec<Vec<String>> = fieldpath::leaves(new_fields)
        .into_iter()
        .filter(|leaf| {
            if leaf.last().map(String::as_str) == Some(".") {
                // An item is the updater's only if it created it.
                fieldpath::value_at(old, &leaf[..leaf.len() - 1]).is_none()
            } else {
                fieldpath::value_at(old, leaf) != fieldpath::value_at(new, leaf)
            }
        })
        .collect();
    let removed: Vec<Vec<String>> = fieldpath::leaves(old_fields)
        .into_iter()
        .filter(|leaf| !fieldpath::contains_prefix(new_fields, leaf))
        .collect();
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    let mut mine = entries
        .iter()
        .find(|e| e.is(manager, "Update", subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for e in entries.iter_mut().filter(|e| e.subresource == subresource) {
        let before = e.fields.clone();
        for leaf in changed.iter().chain(&removed) {
            fieldpath::remove(&mut e.fields, leaf);
        }
        if e.fields != before {
            e.time = now();
        }
    }
    for leaf in &removed {
        fieldpath::remove(&mut mine, leaf);
    }
    for leaf in &changed {
        fieldpath::insert(&mut mine, leaf);
    }
    set_entry(entries, manager, "Update", subresource, api_version, mine);
}

/// A copy without the entries' times: two writes that own the same fields compare equal.
pub fn without_times(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(list) = v["metadata"]["managedFields"].as_array_mut() {
        for e in list {
            if let Some(m) = e.as_object_mut() {
                m.remove("time");
            }
        }
    }
    v
}
