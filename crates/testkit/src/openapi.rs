//! `/openapi/v2` and `/openapi/v3`, from the kinds the server serves: the built-in kinds'
//! schemas come from k8s-openapi (the same definitions a real server publishes, names
//! included), a CRD's from its `openAPIV3Schema`. kubectl reads them: `kubectl explain`
//! (v3), and the client-side validation of `kubectl apply` / `create` (v2).
//!
//! The v3 documents publish each resource's paths with the `fieldValidation` parameter, so
//! kubectl asks the server to validate (`fieldValidation=Strict`, [`unknown_fields`]) rather
//! than download the v2 document as protobuf, which this server does not speak.

use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use k8s_openapi::schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use crate::registry::ResourceType;

/// Registers the schema of the built-in kind `rt` with `generator`; its definition name.
fn builtin(generator: &mut SchemaGenerator, rt: &ResourceType) -> Option<String> {
    use k8s_openapi::api;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    fn add<T: JsonSchema>(generator: &mut SchemaGenerator) -> Option<String> {
        let _: Schema = generator.subschema_for::<T>();
        Some(T::schema_name().into_owned())
    }
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => add::<api::core::v1::Namespace>(generator),
        ("", "ConfigMap") => add::<api::core::v1::ConfigMap>(generator),
        ("", "Secret") => add::<api::core::v1::Secret>(generator),
        ("", "Service") => add::<api::core::v1::Service>(generator),
        ("", "ServiceAccount") => add::<api::core::v1::ServiceAccount>(generator),
        ("", "Pod") => add::<api::core::v1::Pod>(generator),
        ("", "Event") => add::<api::core::v1::Event>(generator),
        ("", "PersistentVolumeClaim") => add::<api::core::v1::PersistentVolumeClaim>(generator),
        ("apps", "Deployment") => add::<api::apps::v1::Deployment>(generator),
        ("apps", "StatefulSet") => add::<api::apps::v1::StatefulSet>(generator),
        ("apps", "ReplicaSet") => add::<api::apps::v1::ReplicaSet>(generator),
        ("batch", "Job") => add::<api::batch::v1::Job>(generator),
        ("batch", "CronJob") => add::<api::batch::v1::CronJob>(generator),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            add::<api::autoscaling::v2::HorizontalPodAutoscaler>(generator)
        }
        ("policy", "PodDisruptionBudget") => add::<api::policy::v1::PodDisruptionBudget>(generator),
        ("networking.k8s.io", "NetworkPolicy") => {
            add::<api::networking::v1::NetworkPolicy>(generator)
        }
        ("coordination.k8s.io", "Lease") => add::<api::coordination::v1::Lease>(generator),
        ("events.k8s.io", "Event") => add::<api::events::v1::Event>(generator),
        ("rbac.authorization.k8s.io", "Role") => add::<api::rbac::v1::Role>(generator),
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            add::<api::rbac::v1::RoleBinding>(generator)
        }
        ("rbac.authorization.k8s.io", "ClusterRole") => {
            add::<api::rbac::v1::ClusterRole>(generator)
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            add::<api::rbac::v1::ClusterRoleBinding>(generator)
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            add::<api::scheduling::v1::PriorityClass>(generator)
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            add::<api::admissionregistration::v1::ValidatingWebhookConfiguration>(generator)
        }
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            add::<api::admissionregistration::v1::MutatingWebhookConfiguration>(generator)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            add::<apiext::CustomResourceDefinition>(generator)
        }
        _ => None,
    }
}

/// `io.example.v1.Gadget` for group `example.io`: the real server's name for a CRD's kind.
fn crd_definition_name(rt: &ResourceType) -> String {
    let reversed: Vec<&str> = rt.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), rt.version, rt.kind)
}

/// A CRD's schema as a definition: `metadata` is ObjectMeta, `apiVersion`/`kind` strings.
fn crd_definition(schema: &Value, object_meta: &str) -> Value {
    let mut definition = schema.clone();
    if definition["type"].is_null() {
        definition["type"] = json!("object");
    }
    definition["properties"]["apiVersion"] = json!({"type": "string"});
    definition["properties"]["kind"] = json!({"type": "string"});
    definition["properties"]["metadata"] = json!({"$ref": object_meta});
    definition
}

/// OpenAPI v2 has no `nullable`: drop it, as the real server does when it publishes v2.
fn without_nullable(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("nullable");
            map.values_mut().for_each(without_nullable);
        }
        Value::Array(items) => items.iter_mut().for_each(without_nullable),
        _ => {}
    }
}

fn gvk(rt: &ResourceType) -> Value {
    json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}])
}

/// Every definition of `types` (built-in and CRD kinds), with their GVK extension.
fn definitions(
    types: &[&ResourceType],
    settings: SchemaSettings,
    ref_prefix: &str,
) -> Map<String, Value> {
    let mut generator = settings.into_generator();
    let mut top = Vec::new();
    for rt in types {
        if rt.schema.is_none()
            && let Some(name) = builtin(&mut generator, rt)
        {
            top.push((name, *rt));
        }
    }
    let _: Schema =
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
    let mut defs = generator.take_definitions(true);
    for (name, rt) in top {
        if let Some(d) = defs.get_mut(&name) {
            d["x-kubernetes-group-version-kind"] = gvk(rt);
        }
    }
    let object_meta = format!("{ref_prefix}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
    for rt in types {
        if let Some(schema) = &rt.schema {
            let mut definition = crd_definition(schema, &object_meta);
            definition["x-kubernetes-group-version-kind"] = gvk(rt);
            defs.insert(crd_definition_name(rt), definition);
        }
    }
    defs
}

/// The Swagger 2.0 document of every kind served.
pub fn v2(types: &[ResourceType]) -> Value {
    let all: Vec<&ResourceType> = types.iter().collect();
    let mut defs = Value::Object(definitions(
        &all,
        SchemaSettings::draft07(),
        "#/definitions/",
    ));
    without_nullable(&mut defs);
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0-testkit"},
        "paths": {},
        "definitions": defs,
    })
}

fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: where each group version's document is.
pub fn v3_index(types: &[ResourceType]) -> Value {
    let mut paths = Map::new();
    for rt in types {
        let path = group_version_path(&rt.group, &rt.version);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}")}),
        );
    }
    json!({"paths": paths})
}

/// The definition name of a served kind in [`definitions`].
fn definition_name(rt: &ResourceType) -> Option<String> {
    if rt.schema.is_some() {
        return Some(crd_definition_name(rt));
    }
    let mut generator = SchemaSettings::openapi3().into_generator();
    builtin(&mut generator, rt)
}

/// The paths of one resource: get/list with its GVK (what `kubectl explain` looks for) and
/// writes that take `fieldValidation` (what `kubectl apply` looks for).
fn resource_paths(rt: &ResourceType, definition: &str) -> Map<String, Value> {
    let prefix = format!("/{}", group_version_path(&rt.group, &rt.version));
    let collection = if rt.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", rt.plural)
    } else {
        format!("{prefix}/{}", rt.plural)
    };
    let gvk = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let one = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{definition}")}}}}});
    let field_validation =
        json!([{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}]);
    let op = |action: &str, writes: bool| {
        let mut op = json!({"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk, "responses": one});
        if writes {
            op["parameters"] = field_validation.clone();
        }
        op
    };
    let mut paths = Map::new();
    paths.insert(
        collection.clone(),
        json!({"get": op("list", false), "post": op("post", true)}),
    );
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({"get": op("get", false), "put": op("put", true), "patch": op("patch", true), "delete": op("delete", false)}),
    );
    paths
}

/// `/openapi/v3/apis/<group>/<version>` (or `/openapi/v3/api/v1`): the OpenAPI 3 document
/// of one group version, or `None` when nothing is served there.
pub fn v3_group_version(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let schemas = definitions(&served, SchemaSettings::openapi3(), "#/components/schemas/");
    let mut paths = Map::new();
    for rt in &served {
        if let Some(name) = definition_name(rt) {
            paths.extend(resource_paths(rt, &name));
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0-testkit"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// The fields of `body` that the schema of its kind does not declare (`spec.extra`), for
/// `fieldValidation=Strict`. Empty for a kind without a known schema.
pub fn unknown_fields(rt: &ResourceType, body: &Value) -> Vec<String> {
    let mut generator = SchemaSettings::draft07().into_generator();
    let name = if rt.schema.is_some() {
        let _: Schema =
            generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
        None
    } else {
        match builtin(&mut generator, rt) {
            Some(name) => Some(name),
            None => return Vec::new(),
        }
    };
    let defs = generator.take_definitions(true);
    let root = match (&rt.schema, name) {
        (Some(schema), _) => crd_definition(
            schema,
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        ),
        (None, Some(name)) => defs.get(&name).cloned().unwrap_or(Value::Null),
        (None, None) => return Vec::new(),
    };
    let mut unknown = Vec::new();
    walk_unknown(body, &root, &defs, "", &mut unknown);
    unknown
}

/// The schema `schema` stands for: a `$ref`, or a single `allOf` around one (how a
/// reference carries its own description), resolved against `defs`.
fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    let schema = match schema["allOf"].as_array() {
        Some(all) if all.len() == 1 => &all[0],
        _ => schema,
    };
    match schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/definitions/"))
    {
        Some(name) => defs.get(name).unwrap_or(&Value::Null),
        None => schema,
    }
}

fn walk_unknown(
    value: &Value,
    schema: &Value,
    defs: &Map<String, Value>,
    path: &str,
    out: &mut Vec<String>,
) {
    let schema = resolve(schema, defs);
    if schema.is_null()
        || schema["x-kubernetes-preserve-unknown-fields"] == true
        || schema["x-kubernetes-int-or-string"] == true
    {
        return;
    }
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            let additional = schema.get("additionalProperties");
            if props.is_none() && additional.is_none() {
                return;
            }
            for (key, child) in map {
                match (props.and_then(|p| p.get(key)), additional) {
                    (Some(sub), _) => walk_unknown(child, sub, defs, &join(key), out),
                    (None, Some(sub)) if sub.is_object() => {
                        walk_unknown(child, sub, defs, &join(key), out)
                    }
                    (None, Some(Value::Bool(true))) => {}
                    (None, _) => out.push(join(key)),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for child in items {
                    walk_unknown(child, item, defs, path, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtins;

    #[test]
    fn strict_validation_names_the_unknown_fields() {
        let types = builtins();
        let deployments = types.iter().find(|t| t.plural == "deployments");
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": {"a": "b"}, "bogus": 1},
            "spec": {"replicas": 1, "extra": true, "template": {"spec": {"containers": [{"name": "c", "image": "i", "sidecar": 1}]}}},
        });
        let unknown = deployments
            .map(|rt| unknown_fields(rt, &deployment))
            .unwrap_or_default();
        assert_eq!(
            unknown,
            vec![
                "metadata.bogus",
                "spec.extra",
                "spec.template.spec.containers.sidecar"
            ]
        );
    }

    #[test]
    fn every_built_in_kind_is_described() {
        let doc = v2(&builtins());
        let defs = doc["definitions"].as_object().cloned().unwrap_or_default();
        for rt in builtins() {
            let described = defs.values().any(|d| {
                d["x-kubernetes-group-version-kind"][0]["kind"] == rt.kind.as_str()
                    && d["x-kubernetes-group-version-kind"][0]["group"] == rt.group.as_str()
            });
            assert!(described, "{}/{}", rt.group, rt.kind);
        }
    }
}
