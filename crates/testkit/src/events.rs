//! One store behind both Event APIs, as on a real server: `events.k8s.io/v1` Events are the
//! core `v1` Events seen through a renaming of fields, so an event an operator publishes
//! through `events.k8s.io` is what `kubectl describe` lists (core Events, selected by their
//! involved object), and the other way round.

use serde_json::{Map, Value, json};

/// `(events.k8s.io/v1 field, core v1 field)` for the fields whose names differ.
const RENAMED: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Whether a request for `group`/`plural` is the `events.k8s.io` view of core Events.
pub fn is_view(group: &str, plural: &str) -> bool {
    group == "events.k8s.io" && plural == "events"
}

fn rename(obj: &Map<String, Value>, to_core: bool) -> Map<String, Value> {
    obj.iter()
        .map(|(k, v)| {
            let renamed = RENAMED.iter().find_map(|(view, core)| {
                let (from, to) = if to_core { (view, core) } else { (core, view) };
                (k == from).then(|| (*to).to_string())
            });
            (renamed.unwrap_or_else(|| k.clone()), v.clone())
        })
        .collect()
}

/// An `events.k8s.io/v1` body (object, merge or apply patch) as a core Event body.
pub fn to_core(body: &Value) -> Value {
    match body.as_object() {
        Some(obj) => {
            let mut core = rename(obj, true);
            if core.contains_key("apiVersion") {
                core.insert("apiVersion".into(), json!("v1"));
            }
            Value::Object(core)
        }
        None => body.clone(),
    }
}

/// The operations of a JSON patch on the view, with their paths on the core object.
pub fn json_patch_to_core(ops: &[Value]) -> Vec<Value> {
    ops.iter()
        .map(|op| {
            let mut op = op.clone();
            for key in ["path", "from"] {
                if let Some(path) = op[key].as_str() {
                    let mut segments = path.splitn(3, '/');
                    let (_, first, rest) = (segments.next(), segments.next(), segments.next());
                    if let Some(first) = first {
                        let core = RENAMED
                            .iter()
                            .find(|(view, _)| *view == first)
                            .map_or(first, |(_, core)| core);
                        op[key] = json!(match rest {
                            Some(rest) => format!("/{core}/{rest}"),
                            None => format!("/{core}"),
                        });
                    }
                }
            }
            op
        })
        .collect()
}

/// A core Event as the `events.k8s.io/v1` view shows it.
pub fn to_view(core: &Value) -> Value {
    match core.as_object() {
        Some(obj) if obj.get("kind").and_then(Value::as_str) == Some("Event") => {
            let mut view = rename(obj, false);
            view.insert("apiVersion".into(), json!("events.k8s.io/v1"));
            Value::Object(view)
        }
        _ => core.clone(),
    }
}

/// A field selector on the view (`regarding.name=x`) as one on core Events.
pub fn selector_to_core(selector: &str) -> String {
    selector
        .split(',')
        .map(|req| {
            RENAMED
                .iter()
                .find_map(|(view, core)| req.strip_prefix(view).map(|rest| format!("{core}{rest}")))
                .unwrap_or_else(|| req.to_string())
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The fields a field selector may name on core Events, besides `metadata.name` and
/// `metadata.namespace` (what the real server's event registry selects by).
pub const SELECTABLE: [&str; 11] = [
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_and_the_core_event_are_the_same_object() {
        let view = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"name": "x"}, "note": "hello", "reason": "R", "reportingController": "op",
        });
        let core = to_core(&view);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "x");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "op");
        assert_eq!(to_view(&core), view);
        assert_eq!(
            selector_to_core("regarding.name=x,reason=R"),
            "involvedObject.name=x,reason=R"
        );
        let ops = json_patch_to_core(&[json!({"op": "replace", "path": "/note", "value": "n"})]);
        assert_eq!(ops[0]["path"], "/message");
    }
}
