//! Field sets in the `fieldsV1` shape that `managedFields` records, and the operations
//! server-side apply needs on them: which fields an object sets, who owns what, merge of an
//! applied configuration into a live object, and removal of fields a manager stopped sending.
//!
//! A set is a JSON object tree: `f:<name>` for a field, `k:<json>` for an item of a list
//! keyed by merge keys, `v:<json>` for an element of a set list, `.` for "the item itself";
//! `{}` is a leaf.

use serde_json::{Map, Value};

use crate::registry::ListSemantics;

pub type FieldSet = Map<String, Value>;

/// Top-level and metadata fields the server owns; never part of anyone's field set.
const SERVER_FIELDS: &[&str] = &["apiVersion", "kind"];
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

#[derive(Clone, Copy)]
enum ListKind<'a> {
    Map(&'a [String]),
    Set,
    Atomic,
}

fn list_kind<'a>(lists: &'a ListSemantics, path: &str) -> ListKind<'a> {
    let matches = |suffix: &str| path == suffix || path.ends_with(&format!(".{suffix}"));
    if let Some((_, keys)) = lists.map_lists.iter().find(|(s, _)| matches(s)) {
        return ListKind::Map(keys);
    }
    if lists.set_lists.iter().any(|s| matches(s)) {
        return ListKind::Set;
    }
    ListKind::Atomic
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let mut key = Map::new();
    for k in keys {
        match item.get(k) {
            Some(v) if !v.is_null() => {
                key.insert(k.clone(), v.clone());
            }
            // A missing optional key (e.g. `protocol`) is left out, as the real server does.
            _ => {}
        }
    }
    (!key.is_empty()).then(|| format!("k:{}", Value::Object(key)))
}

/// Which part of the object a field set covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything but `status` (for kinds with a status subresource).
    Main,
    /// Only `status`.
    Status,
    /// Everything (kinds without a status subresource).
    Whole,
}

/// The fields `obj` sets, within `scope`.
pub fn fields_of(obj: &Value, lists: &ListSemantics, scope: Scope) -> FieldSet {
    let mut set = FieldSet::new();
    let Some(map) = obj.as_object() else {
        return set;
    };
    for (name, value) in map {
        if SERVER_FIELDS.contains(&name.as_str()) || value.is_null() {
            continue;
        }
        let in_scope = match scope {
            Scope::Main => name != "status",
            Scope::Status => name == "status",
            Scope::Whole => true,
        };
        if !in_scope {
            continue;
        }
        let child = if name == "metadata" {
            let mut meta = value.clone();
            if let Some(m) = meta.as_object_mut() {
                for f in SERVER_METADATA {
                    m.remove(*f);
                }
            }
            fields_of_value(&meta, name, lists)
        } else {
            fields_of_value(value, name, lists)
        };
        if name == "metadata" && child.is_empty() {
            continue;
        }
        set.insert(format!("f:{name}"), Value::Object(child));
    }
    set
}

fn fields_of_value(value: &Value, path: &str, lists: &ListSemantics) -> FieldSet {
    let mut set = FieldSet::new();
    match value {
        Value::Object(map) => {
            for (name, v) in map {
                if v.is_null() {
                    continue;
                }
                set.insert(
                    format!("f:{name}"),
                    Value::Object(fields_of_value(v, &join(path, name), lists)),
                );
            }
        }
        Value::Array(items) => match list_kind(lists, path) {
            ListKind::Map(keys) => {
                let item_path = join(path, "[]");
                for item in items {
                    if let Some(key) = item_key(item, keys) {
                        let mut sub = fields_of_value(item, &item_path, lists);
                        sub.insert(".".into(), Value::Object(Map::new()));
                        set.insert(key, Value::Object(sub));
                    }
                }
            }
            ListKind::Set => {
                for item in items {
                    set.insert(format!("v:{item}"), Value::Object(Map::new()));
                }
            }
            ListKind::Atomic => {}
        },
        _ => {}
    }
    set
}

/// Every leaf path of a set, each as its list of elements.
pub fn leaves(set: &FieldSet) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    collect_leaves(set, &mut Vec::new(), &mut out);
    out
}

fn collect_leaves(set: &FieldSet, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    for (element, sub) in set {
        prefix.push(element.clone());
        match sub.as_object() {
            Some(m) if !m.is_empty() => collect_leaves(m, prefix, out),
            _ => out.push(prefix.clone()),
        }
        prefix.pop();
    }
}

/// Whether the set contains this path or anything below it.
pub fn contains_prefix(set: &FieldSet, path: &[String]) -> bool {
    let mut node = set;
    for element in path {
        match node.get(element).and_then(Value::as_object) {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

pub fn insert(set: &mut FieldSet, path: &[String]) {
    let mut node = set;
    for element in path {
        let next = node
            .entry(element.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        let Some(map) = next.as_object_mut() else {
            return;
        };
        node = map;
    }
}

/// Removes a path, and the parents it leaves empty.
pub fn remove(set: &mut FieldSet, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        set.remove(first);
        return;
    }
    if let Some(Value::Object(child)) = set.get_mut(first) {
        remove(child, rest);
        if child.is_empty() {
            set.remove(first);
        }
    }
}

/// The value at a field path, if the object has one.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut node = obj;
    for element in path {
        node = step(node, element)?;
    }
    Some(node)
}

fn step<'a>(node: &'a Value, element: &str) -> Option<&'a Value> {
    if element == "." {
        return Some(node);
    }
    if let Some(name) = element.strip_prefix("f:") {
        return node.get(name);
    }
    let items = node.as_array()?;
    if let Some(key) = element.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        return items
            .iter()
            .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)));
    }
    if let Some(v) = element.strip_prefix("v:") {
        let v: Value = serde_json::from_str(v).ok()?;
        return items.iter().find(|item| **item == v);
    }
    None
}

/// Removes the value at a field path from the object (a field, a keyed item or a set
/// element); an item's `.` removes the item.
pub fn remove_value(obj: &mut Value, path: &[String]) {
    let path: Vec<&String> = path.iter().filter(|e| e.as_str() != ".").collect();
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = obj;
    for element in parents {
        let next = match step_mut(node, element) {
            Some(n) => n,
            None => return,
        };
        node = next;
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(m) = node.as_object_mut() {
            m.remove(name);
        }
    } else if let Some(items) = node.as_array_mut()
        && let Some(i) = items.iter().position(|item| item_matches(item, last))
    {
        items.remove(i);
    }
}

fn step_mut<'a>(node: &'a mut Value, element: &str) -> Option<&'a mut Value> {
    if let Some(name) = element.strip_prefix("f:") {
        return node.get_mut(name);
    }
    let items = node.as_array_mut()?;
    let i = items.iter().position(|item| item_matches(item, element))?;
    items.get_mut(i)
}

// `step` on a list element: a keyed item matches `k:`, a set element matches `v:`.
fn item_matches(item: &Value, element: &str) -> bool {
    if let Some(key) = element.strip_prefix("k:") {
        return serde_json::from_str::<Map<String, Value>>(key)
            .map(|key| key.iter().all(|(k, v)| item.get(k) == Some(v)))
            .unwrap_or(false);
    }
    if let Some(v) = element.strip_prefix("v:") {
        return serde_json::from_str::<Value>(v).is_ok_and(|v| *item == v);
    }
    false
}

/// Merges an applied configuration into the live object: maps merge field by field,
/// keyed lists merge item by item, set lists take the union, anything else is replaced.
pub fn merge_applied(live: &mut Value, applied: &Value, lists: &ListSemantics) {
    merge_at(live, applied, "", lists);
}

fn merge_at(live: &mut Value, applied: &Value, path: &str, lists: &ListSemantics) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (name, av) in a {
                if av.is_null() {
                    continue;
                }
                let p = join(path, name);
                match l.get_mut(name) {
                    Some(lv) => merge_at(lv, av, &p, lists),
                    None => {
                        l.insert(name.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) => match list_kind(lists, path) {
            ListKind::Map(keys) => {
                let item_path = join(path, "[]");
                for item in a {
                    let key = item_key(item, keys);
                    let existing = key
                        .as_deref()
                        .and_then(|k| l.iter_mut().find(|li| item_matches(li, k)));
                    match existing {
                        Some(li) => merge_at(li, item, &item_path, lists),
                        None => l.push(item.clone()),
                    }
                }
            }
            ListKind::Set => {
                for item in a {
                    if !l.contains(item) {
                        l.push(item.clone());
                    }
                }
            }
            ListKind::Atomic => *l = a.clone(),
        },
        (l, a) => *l = a.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtins;
    use serde_json::json;

    fn lists() -> ListSemantics {
        builtins()
            .into_iter()
            .find(|t| t.kind == "Deployment")
            .map(|t| t.lists)
            .unwrap_or_default()
    }

    #[test]
    fn keyed_lists_are_owned_item_by_item() {
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"a": "1"}},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}
        });
        let set = fields_of(&obj, &lists(), Scope::Main);
        let leaves = leaves(&set);
        assert!(leaves.contains(&vec!["f:metadata".into(), "f:labels".into(), "f:a".into()]));
        let image: Vec<String> = vec![
            "f:spec".into(),
            "f:template".into(),
            "f:spec".into(),
            "f:containers".into(),
            r#"k:{"name":"c"}"#.into(),
            "f:image".into(),
        ];
        assert!(leaves.contains(&image));
        assert_eq!(value_at(&obj, &image), Some(&json!("i")));
        assert!(
            !leaves
                .iter()
                .any(|l| l.contains(&"f:name".to_string()) && l.len() == 2)
        );
    }

    #[test]
    fn merge_keeps_other_items_and_replaces_atomic_lists() {
        let mut live = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}], "args": ["x"]}});
        let applied = json!({"spec": {"containers": [{"name": "b", "image": "3"}], "args": ["y"]}});
        merge_applied(&mut live, &applied, &lists());
        assert_eq!(
            live,
            json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "3"}], "args": ["y"]}})
        );
    }

    #[test]
    fn remove_value_drops_a_keyed_item() {
        let mut obj = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let path: Vec<String> = vec![
            "f:spec".into(),
            "f:containers".into(),
            r#"k:{"name":"a"}"#.into(),
            ".".into(),
        ];
        remove_value(&mut obj, &path);
        assert_eq!(obj, json!({"spec": {"containers": [{"name": "b"}]}}));
    }
}
