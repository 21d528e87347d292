//! The defaulting patch: what a defaulted object adds to the original, and nothing else.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use serde_json::Value;

/// JSON-patch `add` operations for every field `filled` has that `original` lacks (objects
/// and equally long lists are walked; a `null` is not a default). A field the user wrote is
/// never replaced or removed, even where `filled` writes it differently.
pub fn additions(original: &Value, filled: &Value) -> Patch {
    let mut ops = Vec::new();
    walk(original, filled, &mut PointerBuf::root(), &mut ops);
    Patch(ops)
}

fn walk(original: &Value, filled: &Value, at: &mut PointerBuf, ops: &mut Vec<PatchOperation>) {
    match (original, filled) {
        (Value::Object(have), Value::Object(want)) => {
            for (key, value) in want {
                let mut path = at.clone();
                path.push_back(key.as_str());
                match have.get(key) {
                    None if !value.is_null() => ops.push(PatchOperation::Add(AddOperation {
                        path,
                        value: value.clone(),
                    })),
                    None => {}
                    Some(present) => walk(present, value, &mut path, ops),
                }
            }
        }
        (Value::Array(have), Value::Array(want)) if have.len() == want.len() => {
            for (i, (present, value)) in have.iter().zip(want).enumerate() {
                let mut path = at.clone();
                path.push_back(i);
                walk(present, value, &mut path, ops);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn adds_missing_fields_at_any_depth_and_nothing_else() {
        let original = json!({"spec": {"replicas": 2, "partners": [{"name": "a"}], "x": null}});
        let filled = json!({"spec": {"replicas": 3, "timeout": "30s",
            "partners": [{"name": "a", "weight": 1}], "x": null, "y": null}});
        let patch = additions(&original, &filled);
        let paths: Vec<String> = patch
            .0
            .iter()
            .map(|op| match op {
                PatchOperation::Add(a) => a.path.to_string(),
                other => format!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(paths, ["/spec/partners/0/weight", "/spec/timeout"]);
    }

    fn json_tree() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[a-z/~]{0,4}".prop_map(Value::from),
            Just(Value::Null),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::btree_map("[a-z/~]{1,3}", inner.clone(), 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::vec(inner, 0..3).prop_map(Value::Array),
            ]
        })
    }

    proptest! {
        /// Applying the patch keeps every field the user wrote as written, and afterwards
        /// nothing is left to add.
        #[test]
        fn patch_applies_and_only_adds(original in json_tree(), filled in json_tree()) {
            let patch = additions(&original, &filled);
            let mut patched = original.clone();
            json_patch::patch(&mut patched, &patch).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(additions(&patched, &filled).0.is_empty());
            prop_assert!(keeps(&original, &patched), "{original} -> {patched}");
        }
    }

    /// Whether everything in `original` is in `patched` unchanged.
    fn keeps(original: &Value, patched: &Value) -> bool {
        match (original, patched) {
            (Value::Object(a), Value::Object(b)) => {
                a.iter().all(|(k, v)| b.get(k).is_some_and(|w| keeps(v, w)))
            }
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(v, w)| keeps(v, w))
            }
            (a, b) => a == b,
        }
    }
}
