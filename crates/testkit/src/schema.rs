//! CRD schemas as the API server applies them: the structural-schema check when a CRD is
//! installed, then for every write of a custom resource: pruning of unknown fields,
//! defaulting, validation (OpenAPI v3 subset with the Kubernetes extensions) and the CEL rules
//! of `x-kubernetes-validations`.
//!
//! Written here rather than with a generic JSON-schema crate because the semantics that
//! matter are Kubernetes' own: `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-
//! fields`, pruning, `nullable`, defaults and CEL — none of which a JSON-schema validator models.

use serde_json::{Map, Value};

use crate::error::Cause;
use crate::rules;

fn is_true(schema: &Value, key: &str) -> bool {
    schema[key].as_bool() == Some(true)
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Keywords a structural schema may not use.
const FORBIDDEN: &[&str] = &[
    "$ref",
    "definitions",
    "dependencies",
    "patternProperties",
    "additionalItems",
];

/// Why a CRD's schema is not structural, in the API server's words; empty when it is.
pub fn structural_violations(schema: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let base = "spec.validation.openAPIV3Schema";
    if schema["type"] != "object" {
        causes.push(Cause {
            field: format!("{base}.type"),
            message: "Unsupported value: must be object at the root".into(),
        });
    }
    check_structural(schema, base, true, &mut causes);
    causes
}

fn check_structural(schema: &Value, path: &str, root: bool, causes: &mut Vec<Cause>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    let typeless_ok = is_true(schema, "x-kubernetes-int-or-string")
        || is_true(schema, "x-kubernetes-preserve-unknown-fields");
    if map
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        && !typeless_ok
    {
        causes.push(Cause {
            field: format!("{path}.type"),
            message: "Required value: must not be empty for specified object fields".into(),
        });
    }
    for keyword in FORBIDDEN {
        if map.contains_key(*keyword) {
            causes.push(Cause {
                field: format!("{path}.{keyword}"),
                message: "Forbidden: must not be used in a structural schema".into(),
            });
        }
    }
    if is_true(schema, "uniqueItems") {
        causes.push(Cause {
            field: format!("{path}.uniqueItems"),
            message: "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic".into(),
        });
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        causes.push(Cause {
            field: format!("{path}.additionalProperties"),
            message: "Forbidden: additionalProperties and properties are mutual exclusive".into(),
        });
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let sub_path = format!("{path}.properties[{name}]");
            if root && name == "metadata" {
                let allowed = sub
                    .get("properties")
                    .and_then(Value::as_object)
                    .is_none_or(|p| p.keys().all(|k| k == "name" || k == "generateName"));
                if !allowed {
                    causes.push(Cause {
                        field: sub_path.clone(),
                        message: "Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified".into(),
                    });
                }
                continue;
            }
            check_structural(sub, &sub_path, false, causes);
        }
    }
    if let Some(items) = map.get("items") {
        if items.is_array() {
            causes.push(Cause {
                field: format!("{path}.items"),
                message: "Forbidden: items must be a schema object and not an array".into(),
            });
        } else {
            check_structural(items, &format!("{path}.items"), false, causes);
        }
    }
    if let Some(additional) = map.get("additionalProperties").filter(|v| v.is_object()) {
        check_structural(
            additional,
            &format!("{path}.additionalProperties"),
            false,
            causes,
        );
    }
}

/// Prunes unknown fields and fills defaults, as the server does before it validates.
pub fn prune_and_default(value: &mut Value, schema: &Value) {
    prune_at(value, schema, true);
}

fn prune_at(value: &mut Value, schema: &Value, root: bool) {
    match value {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            let preserve = is_true(schema, "x-kubernetes-preserve-unknown-fields");
            if let Some(props) = props {
                for (name, sub) in props {
                    if !map.contains_key(name)
                        && let Some(default) = sub.get("default")
                    {
                        map.insert(name.clone(), default.clone());
                    }
                }
            }
            let names: Vec<String> = map.keys().cloned().collect();
            for name in names {
                if root && (name == "apiVersion" || name == "kind" || name == "metadata") {
                    continue;
                }
                let sub_schema = props
                    .and_then(|p| p.get(&name))
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
                match sub_schema {
                    Some(sub) => {
                        let drop_null =
                            map.get(&name).is_some_and(Value::is_null) && !is_true(sub, "nullable");
                        if drop_null {
                            map.remove(&name);
                        } else if let Some(v) = map.get_mut(&name) {
                            prune_at(v, sub, false);
                        }
                    }
                    None if preserve || schema["additionalProperties"] == Value::Bool(true) => {}
                    None => {
                        map.remove(&name);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    prune_at(item, item_schema, false);
                }
            }
        }
        _ => {}
    }
}

/// Every way `value` breaks `schema` (after pruning and defaulting), including CEL rules;
/// on an update, `old` is the stored object, which transition rules read as `oldSelf`.
pub fn validate(value: &Value, schema: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_at(value, old, schema, "", true, &mut causes);
    causes
}

fn invalid(path: &str, value: &Value, why: String) -> Cause {
    let shown = match value {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    let field = if path.is_empty() {
        "<root>".to_string()
    } else {
        path.to_string()
    };
    Cause {
        message: format!("Invalid value: {shown}: {why}"),
        field,
    }
}

fn type_matches(value: &Value, schema: &Value) -> bool {
    if is_true(schema, "x-kubernetes-int-or-string") {
        return value.is_string() || value.as_i64().is_some() || value.as_u64().is_some();
    }
    match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    }
}

/// `old` is the value at the same place in the stored object, where there is one: object
/// properties correlate by name; list items do not (the API server correlates only the
/// items of `map` lists, by key, which no CRD of ours needs).
fn validate_at(
    value: &Value,
    old: Option<&Value>,
    schema: &Value,
    path: &str,
    root: bool,
    causes: &mut Vec<Cause>,
) {
    if value.is_null() {
        if !is_true(schema, "nullable") {
            causes.push(invalid(path, value, "must not be null".into()));
        }
        return;
    }
    if !type_matches(value, schema) {
        let want = schema["type"].as_str().unwrap_or("int-or-string");
        causes.push(invalid(
            path,
            value,
            format!("{path} in body must be of type {want}"),
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        causes.push(Cause {
            field: path.to_string(),
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        });
    }
    validate_bounds(value, schema, path, causes);
    match value {
        Value::Object(map) => validate_object(map, old, schema, path, root, causes),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{path}[{i}]");
                    validate_at(item, None, item_schema, &at, false, causes);
                }
            }
        }
        _ => {}
    }
    if let Some(rules) = schema["x-kubernetes-validations"].as_array() {
        let checked = rules::Checked {
            value,
            old,
            path,
            type_name: schema["type"].as_str().unwrap_or("object"),
        };
        for rule in rules {
            if let Some(cause) = rules::check_rule(rule, &checked) {
                causes.push(cause);
            }
        }
    }
}

fn validate_object(
    map: &Map<String, Value>,
    old: Option<&Value>,
    schema: &Value,
    path: &str,
    root: bool,
    causes: &mut Vec<Cause>,
) {
    for required in schema["required"].as_array().into_iter().flatten() {
        if let Some(name) = required.as_str()
            && !map.contains_key(name)
        {
            causes.push(Cause {
                field: join(path, name),
                message: "Required value".into(),
            });
        }
    }
    let props = schema["properties"].as_object();
    for (name, v) in map {
        if root && (name == "apiVersion" || name == "kind" || name == "metadata") {
            continue;
        }
        let sub = props
            .and_then(|p| p.get(name))
            .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
        if let Some(sub) = sub {
            let was = old.and_then(|o| o.get(name));
            validate_at(v, was, sub, &join(path, name), false, causes);
        }
    }
}

fn validate_bounds(value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(n) = value.as_f64().filter(|_| value.is_number()) {
        let exclusive_min = is_true(schema, "exclusiveMinimum");
        let exclusive_max = is_true(schema, "exclusiveMaximum");
        if let Some(min) = schema["minimum"].as_f64()
            && (n < min || (exclusive_min && n == min))
        {
            let op = if exclusive_min {
                "greater than"
            } else {
                "greater than or equal to"
            };
            causes.push(invalid(
                path,
                value,
                format!("{path} in body should be {op} {}", schema["minimum"]),
            ));
        }
        if let Some(max) = schema["maximum"].as_f64()
            && (n > max || (exclusive_max && n == max))
        {
            let op = if exclusive_max {
                "less than"
            } else {
                "less than or equal to"
            };
            causes.push(invalid(
                path,
                value,
                format!("{path} in body should be {op} {}", schema["maximum"]),
            ));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema["minLength"].as_u64()
            && len < min
        {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body should be at least {min} chars long"),
            ));
        }
        if let Some(max) = schema["maxLength"].as_u64()
            && len > max
        {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body may not be longer than {max}"),
            ));
        }
        if let Some(pattern) = schema["pattern"].as_str() {
            match regex::Regex::new(pattern) {
                Ok(re) if !re.is_match(s) => causes.push(invalid(
                    path,
                    value,
                    format!("{path} in body should match '{pattern}'"),
                )),
                Ok(_) => {}
                Err(e) => causes.push(invalid(
                    path,
                    value,
                    format!("the schema's pattern does not compile: {e}"),
                )),
            }
        }
    }
    if let Some(items) = value.as_array() {
        let n = items.len() as u64;
        if let Some(min) = schema["minItems"].as_u64()
            && n < min
        {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body should have at least {min} items"),
            ));
        }
        if let Some(max) = schema["maxItems"].as_u64()
            && n > max
        {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body should have at most {max} items"),
            ));
        }
    }
    if let Some(map) = value.as_object() {
        let n = map.len() as u64;
        if let Some(min) = schema["minProperties"].as_u64()
            && n < min
        {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body should have at least {min} properties"),
            ));
        }
        if let Some(max) = schema["maxProperties"].as_u64()
            && n > max
        {
            causes.push(invalid(
                path,
                value,
                format!("{path} in body should have at most {max} properties"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["sources"],
                    "properties": {
                        "sources": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                        "frequency": {"type": "string", "pattern": "^[0-9]+(ms|s|m)$"},
                        "size": {"type": "integer", "minimum": 1000, "maximum": 10000000},
                        "policy": {"type": "string", "enum": ["aggressive", "moderate"], "default": "moderate"},
                        "port": {"x-kubernetes-int-or-string": true},
                        "params": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }
                }
            }
        })
    }

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn valid_objects_pass_after_pruning_and_defaulting() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"sources": ["a"], "frequency": "5s", "size": 5000, "port": "http",
                     "params": {"k": "v"}, "free": {"any": {"thing": 1}}, "unknown": 1},
            "extra": true});
        prune_and_default(&mut obj, &schema());
        assert!(obj["spec"].get("unknown").is_none() && obj.get("extra").is_none());
        assert_eq!(obj["spec"]["free"]["any"]["thing"], 1, "preserved");
        assert_eq!(obj["spec"]["policy"], "moderate", "defaulted");
        assert!(validate(&obj, &schema(), None).is_empty());
    }

    #[test]
    fn each_violation_names_its_field() {
        let obj = json!({"spec": {"sources": [], "frequency": "5h", "size": 500, "policy": "wild", "port": 1.5}});
        let causes = validate(&obj, &schema(), None);
        assert_eq!(
            fields(&causes),
            vec![
                "spec.frequency",
                "spec.policy",
                "spec.port",
                "spec.size",
                "spec.sources"
            ]
        );
        assert!(causes[3].message.contains("greater than or equal to 1000"));
        let missing = validate(&json!({"spec": {}}), &schema(), None);
        assert_eq!(fields(&missing), vec!["spec.sources"]);
    }

    #[test]
    fn non_structural_schemas_are_named() {
        let bad = json!({"type": "object", "properties": {
            "spec": {"properties": {"a": {"type": "string"}}},
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
            "list": {"type": "array", "items": [{"type": "string"}]}
        }});
        let causes = structural_violations(&bad);
        let f = fields(&causes);
        assert!(f.contains(&"spec.validation.openAPIV3Schema.properties[spec].type"));
        assert!(f.contains(&"spec.validation.openAPIV3Schema.properties[metadata]"));
        assert!(f.contains(&"spec.validation.openAPIV3Schema.properties[list].items"));
        assert!(structural_violations(&schema()).is_empty());
    }
}
