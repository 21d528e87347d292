//! A write's path through the store: create, update, patch, apply and delete of an object,
//! its status, and its scale subresource.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::events;
use crate::faults::Verb;
use crate::shared::{Shared, Target, at_path, list_options, lock, parse_body, shape};
use crate::store::{DeleteOptions, PatchBody, Propagation, Store, Written};

// Over 120 lines on purpose: a write's whole path (scale and status subresources, create,
// update, patch, apply, delete, dry run) in the order the API server's handler takes it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn serve(
    shared: &Shared,
    target: &Target,
    verb: Verb,
    q: &HashMap<String, String>,
    body: &[u8],
    content_type: &str,
    manager: &str,
    metadata_only: bool,
    admission_patches: Vec<json_patch::Patch>,
) -> Result<(Value, bool), ApiError> {
    let rt = &target.rt;
    let ns = target.namespace.as_deref().unwrap_or_default();
    let name = target.name.as_deref().unwrap_or_default();
    let sub = target.subresource.as_deref();
    if sub == Some("scale")
        && let Some(paths) = &rt.scale
    {
        let dry_run = q.get("dryRun").is_some_and(|d| d == "All");
        return scale(
            shared,
            target,
            paths,
            verb,
            body,
            content_type,
            manager,
            dry_run,
        );
    }
    if let Some(s) = sub
        && (s != "status" || !rt.status_subresource)
    {
        return Err(ApiError::not_found(&format!("{}/{s}", rt.plural), name));
    }
    if rt.namespaced
        && target.namespace.is_none()
        && verb.is_write()
        && verb != Verb::DeleteCollection
    {
        return Err(ApiError::bad_request(format!(
            "{} is namespaced: the request needs a namespace",
            rt.plural
        )));
    }
    let mut locked = lock(&shared.store);
    // dryRun: the whole write, admission and all, on a copy nobody sees.
    let dry_run = verb.is_write()
        && (q.get("dryRun").is_some_and(|d| d == "All")
            || serde_json::from_slice::<Value>(body).is_ok_and(|b| {
                b["dryRun"]
                    .as_array()
                    .is_some_and(|d| d.contains(&json!("All")))
            }));
    let mut scratch;
    let store: &mut Store = if dry_run {
        scratch = locked.scratch();
        &mut scratch
    } else {
        &mut locked
    };
    // The mutating webhooks' patches go with this write only, taken by its commit.
    store.admit_with(admission_patches);
    let store = &mut *store;
    let written = |w: Written| (w.object, w.changed && !dry_run);
    let outcome = (|| match verb {
        Verb::Get => Ok((shape(store.get(rt, ns, name)?, metadata_only), false)),
        Verb::List => {
            let opts = list_options(q)?;
            let (items, more) = store.list(rt, target.namespace.as_deref(), &opts)?;
            let kind = if metadata_only {
                "PartialObjectMetadataList".to_string()
            } else {
                format!("{}List", rt.kind)
            };
            let api_version = if metadata_only {
                "meta.k8s.io/v1".to_string()
            } else {
                rt.api_version()
            };
            let mut meta = json!({"resourceVersion": store.resource_version().to_string()});
            if let Some(c) = more {
                meta["continue"] = json!(c);
            }
            let items: Vec<Value> = items.into_iter().map(|o| shape(o, metadata_only)).collect();
            Ok((
                json!({"apiVersion": api_version, "kind": kind, "metadata": meta, "items": items}),
                false,
            ))
        }
        Verb::Create => Ok(written(store.create(rt, ns, parse_body(body)?, manager)?)),
        Verb::Update => Ok(written(store.update(
            rt,
            ns,
            name,
            parse_body(body)?,
            sub,
            manager,
        )?)),
        Verb::Apply => {
            let force = q.get("force").is_some_and(|f| f == "true");
            let manager = q.get("fieldManager").map_or("", String::as_str);
            Ok(written(store.apply(
                rt,
                ns,
                name,
                parse_body(body)?,
                sub,
                manager,
                force,
            )?))
        }
        Verb::Patch => {
            let patch_body = parse_body(body)?;
            let patch = match content_type.split(';').next().unwrap_or_default() {
                "application/merge-patch+json" => PatchBody::Merge(patch_body),
                "application/strategic-merge-patch+json" => PatchBody::Strategic(patch_body),
                "application/json-patch+json" => {
                    PatchBody::Json(patch_body.as_array().cloned().ok_or_else(|| {
                        ApiError::bad_request("a JSON patch must be a list of operations")
                    })?)
                }
                other => {
                    return Err(ApiError::unsupported_media_type(format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got {other}"
                    )));
                }
            };
            Ok(written(store.patch(rt, ns, name, patch, sub, manager)?))
        }
        Verb::Delete => Ok(written(store.delete(
            rt,
            ns,
            name,
            &delete_options(q, body),
        )?)),
        Verb::DeleteCollection => {
            let deleted = store.delete_collection(
                rt,
                target.namespace.as_deref(),
                &list_options(q)?,
                &delete_options(q, body),
            )?;
            let changed = !deleted.is_empty();
            Ok((
                json!({"apiVersion": rt.api_version(), "kind": format!("{}List", rt.kind), "metadata": {}, "items": deleted}),
                changed,
            ))
        }
        Verb::Watch => Err(ApiError::method_not_allowed("watch is served as a stream")),
    })();
    // Never left for a later write when this one failed before its commit.
    store.admit_with(Vec::new());
    outcome
}

/// The `autoscaling/v1` Scale of a custom resource, as its CRD's scale paths read it.
pub(crate) fn scale_of(obj: &Value, paths: &crate::registry::ScalePaths) -> Value {
    let meta = &obj["metadata"];
    let replicas = |path: &str| at_path(obj, path).and_then(Value::as_i64).unwrap_or(0);
    let mut status = json!({"replicas": replicas(&paths.status_replicas)});
    if let Some(selector) = paths
        .label_selector
        .as_deref()
        .and_then(|p| at_path(obj, p))
        && selector.is_string()
    {
        status["selector"] = selector.clone();
    }
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": replicas(&paths.spec_replicas)},
        "status": status,
    })
}

/// `GET`, `PUT` and `PATCH` of a custom resource's `scale` subresource: a write sets the
/// resource's replicas path (and only it), with the writer as its field manager.
#[allow(clippy::too_many_arguments)]
pub(crate) fn scale(
    shared: &Shared,
    target: &Target,
    paths: &crate::registry::ScalePaths,
    verb: Verb,
    body: &[u8],
    content_type: &str,
    manager: &str,
    dry_run: bool,
) -> Result<(Value, bool), ApiError> {
    let rt = &target.rt;
    let ns = target.namespace.as_deref().unwrap_or_default();
    let name = target.name.as_deref().unwrap_or_default();
    let mut locked = lock(&shared.store);
    let mut scratch;
    let store: &mut Store = if dry_run {
        scratch = locked.scratch();
        &mut scratch
    } else {
        &mut locked
    };
    let current = scale_of(&store.get(rt, ns, name)?, paths);
    let wanted = match verb {
        Verb::Get => return Ok((current, false)),
        Verb::Update => parse_body(body)?,
        Verb::Patch => {
            let patch = parse_body(body)?;
            let mut scale = current.clone();
            match content_type.split(';').next().unwrap_or_default() {
                "application/json-patch+json" => {
                    let ops: json_patch::Patch = serde_json::from_value(patch)
                        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                    json_patch::patch(&mut scale, &ops)
                        .map_err(|e| ApiError::invalid_patch(e.to_string()))?;
                }
                _ => json_patch::merge(&mut scale, &patch),
            }
            scale
        }
        _ => {
            return Err(ApiError::method_not_allowed(
                "the scale subresource takes get, update and patch",
            ));
        }
    };
    let replicas = wanted["spec"]["replicas"]
        .as_i64()
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::bad_request("Scale spec.replicas must be a number of 0 or more")
        })?;
    let mut set = json!(replicas);
    for key in paths.spec_replicas.trim_start_matches('.').rsplit('.') {
        set = json!({ key: set });
    }
    let written = store.patch(rt, ns, name, PatchBody::Merge(set), None, manager)?;
    Ok((
        scale_of(&written.object, paths),
        written.changed && !dry_run,
    ))
}

pub(crate) fn delete_options(q: &HashMap<String, String>, body: &[u8]) -> DeleteOptions {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let policy = q
        .get("propagationPolicy")
        .map(String::as_str)
        .or_else(|| body["propagationPolicy"].as_str());
    DeleteOptions {
        propagation: match policy {
            Some("Foreground") => Some(Propagation::Foreground),
            Some("Orphan") => Some(Propagation::Orphan),
            Some("Background") => Some(Propagation::Background),
            _ => None,
        },
        uid: body["preconditions"]["uid"].as_str().map(String::from),
        resource_version: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(String::from),
    }
}

/// A request body on the `events.k8s.io/v1` view, as the core Events store takes it.
pub(crate) fn events_body_to_core(
    verb: Verb,
    content_type: &str,
    body: &Bytes,
) -> Result<Bytes, ApiError> {
    if !verb.is_write() || body.is_empty() || matches!(verb, Verb::Delete | Verb::DeleteCollection)
    {
        return Ok(body.clone());
    }
    let value = parse_body(body)?;
    let converted = if content_type.starts_with("application/json-patch+json") {
        Value::Array(events::json_patch_to_core(
            value.as_array().map_or(&[][..], Vec::as_slice),
        ))
    } else {
        events::to_core(&value)
    };
    Ok(Bytes::from(
        serde_json::to_vec(&converted).unwrap_or_default(),
    ))
}
