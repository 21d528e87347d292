//! The Kubernetes REST protocol over the store: routing, query parameters, list and watch
//! responses, discovery, and the fault and accounting hooks every request passes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use crate::admission::{self, ServiceRoutes};
use crate::conversion;
use crate::error::ApiError;
use crate::events;
use crate::faults::{FaultState, Faults, RequestStats, Verb};
use crate::openapi;
use crate::registry::ResourceType;
use crate::selector::Selector;
use crate::store::{Change, DeleteOptions, ListOptions, PatchBody, Propagation, Store, Written};

pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// How long a watch lasts when the client names no `timeoutSeconds`.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

#[derive(Debug)]
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub faults: Mutex<FaultState>,
    pub stats: Mutex<RequestStats>,
    /// Bumped to cut every open watch.
    pub disconnect: watch::Sender<u64>,
    /// Which local address serves a Service a webhook names.
    pub services: Mutex<ServiceRoutes>,
    /// Held from a write's admission to its commit, so the webhooks judged the object that
    /// is stored (writes no webhook looks at do not wait for it).
    pub admission: tokio::sync::Mutex<()>,
}

/// Locks a mutex, recovering the data if a panicking test thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub fn new(history_limit: usize, faults: Faults) -> Self {
        Self {
            store: Mutex::new(Store::new(history_limit)),
            faults: Mutex::new(FaultState::new(faults)),
            stats: Mutex::new(RequestStats::default()),
            disconnect: watch::channel(0).0,
            services: Mutex::new(ServiceRoutes::new()),
            admission: tokio::sync::Mutex::new(()),
        }
    }
}

pub(crate) fn json_response(code: u16, body: &Value) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

fn error_response(e: &ApiError) -> Response<ResponseBody> {
    let mut resp = json_response(e.code, &e.to_status());
    if let Some(secs) = e.retry_after
        && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// A request's path, resolved against the kinds the server knows.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) rt: ResourceType,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
    /// `events.k8s.io/v1` Events: served from the core Events, through [`events`].
    pub(crate) events_view: bool,
}

enum Route {
    Resource(Box<Target>),
    Discovery(Value),
}

fn route(store: &Store, path: &str) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => {
            return Ok(Route::Discovery(json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.0-testkit",
                "platform": "linux/amd64"
            })));
        }
        ["api"] => {
            return Ok(Route::Discovery(json!({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]
            })));
        }
        ["apis"] => return Ok(Route::Discovery(group_list(store))),
        ["openapi", "v2"] => return Ok(Route::Discovery(openapi::v2(store.types()))),
        ["openapi", "v3"] => return Ok(Route::Discovery(openapi::v3_index(store.types()))),
        ["openapi", "v3", "api", version] => {
            return openapi::v3_group_version(store.types(), "", version)
                .map(Route::Discovery)
                .ok_or_else(|| ApiError::not_found("path", path));
        }
        ["openapi", "v3", "apis", group, version] => {
            return openapi::v3_group_version(store.types(), group, version)
                .map(Route::Discovery)
                .ok_or_else(|| ApiError::not_found("path", path));
        }
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::not_found("path", path)),
    };
    if rest.is_empty() {
        return Ok(Route::Discovery(resource_list(store, group, version)));
    }
    let known = |plural: &str| store.resolve(group, version, plural);
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if known(plural).is_some() => {
            (Some((*ns).to_string()), [&[*plural][..], tail].concat())
        }
        other => (None, other.to_vec()),
    };
    let plural = rest.first().copied().unwrap_or_default();
    let events_view = events::is_view(group, plural);
    let rt = if events_view {
        store.resolve("", "v1", "events")
    } else {
        known(plural)
    }
    .ok_or_else(|| {
        ApiError::not_found("the server could not find the requested resource", plural)
    })?;
    Ok(Route::Resource(Box::new(Target {
        rt,
        namespace,
        name: rest.get(1).map(|s| (*s).to_string()),
        subresource: rest.get(2).map(|s| (*s).to_string()),
        events_view,
    })))
}

fn group_list(store: &Store) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for t in store.types().iter().filter(|t| !t.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, versions)) if !versions.contains(&t.version) => {
                versions.push(t.version.clone())
            }
            Some(_) => {}
            None => groups.push((t.group.clone(), vec![t.version.clone()])),
        }
    }
    json!({
        "kind": "APIGroupList", "apiVersion": "v1",
        "groups": groups.iter().map(|(g, vs)| {
            let versions: Vec<Value> = vs.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
            json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
        }).collect::<Vec<_>>()
    })
}

fn resource_list(store: &Store, group: &str, version: &str) -> Value {
    let verbs = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    let mut resources = Vec::new();
    for t in store
        .types()
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        resources.push(json!({
            "name": t.plural, "singularName": t.kind.to_lowercase(), "namespaced": t.namespaced,
            "kind": t.kind, "verbs": verbs, "shortNames": t.short_names,
        }));
        if t.scale.is_some() {
            resources.push(json!({
                "name": format!("{}/scale", t.plural), "singularName": "", "namespaced": t.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
        if t.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", t.plural), "singularName": "", "namespaced": t.namespaced,
                "kind": t.kind, "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

fn query(uri: &http::Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn verb_of(
    method: &Method,
    target: &Target,
    q: &HashMap<String, String>,
    content_type: &str,
) -> Verb {
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    match (method, target.name.is_some()) {
        (&Method::GET, true) => Verb::Get,
        (&Method::GET, false) if watch => Verb::Watch,
        (&Method::GET, false) => Verb::List,
        (&Method::POST, _) => Verb::Create,
        (&Method::PUT, _) => Verb::Update,
        (&Method::PATCH, _) if content_type.starts_with("application/apply-patch") => Verb::Apply,
        (&Method::PATCH, _) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        _ => Verb::DeleteCollection,
    }
}

/// A timestamp as `kubectl get` shows an age: `45s`, `12m`, `3h`, `2d`.
fn age(timestamp: &str) -> String {
    let Ok(then) = timestamp.parse::<k8s_openapi::jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = k8s_openapi::jiff::Timestamp::now()
        .duration_since(then)
        .as_secs()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The value at a simple JSONPath (`.status.phase`).
fn at_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
        .try_fold(obj, |v, p| v.get(p))
}

/// The `Table` kubectl asks for (`Accept: …;as=Table`): NAME, the CRD's printer columns
/// (or AGE for built-in kinds), one row per object.
fn table(rt: &ResourceType, items: &[Value], resource_version: u64) -> Value {
    let mut columns = vec![(
        "Name".to_string(),
        "string".to_string(),
        ".metadata.name".to_string(),
    )];
    if rt.printer_columns.is_empty() {
        columns.push((
            "Age".into(),
            "date".into(),
            ".metadata.creationTimestamp".into(),
        ));
    } else {
        columns.extend(rt.printer_columns.iter().cloned());
    }
    let definitions: Vec<Value> = columns
        .iter()
        .map(|(name, type_, _)| {
            let format = if name == "Name" { "name" } else { "" };
            json!({"name": name, "type": type_, "format": format, "description": "", "priority": 0})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let cells: Vec<Value> = columns
                .iter()
                .map(|(_, type_, path)| match (type_.as_str(), at_path(obj, path)) {
                    ("date", Some(Value::String(t))) => json!(age(t)),
                    (_, Some(v)) => v.clone(),
                    (_, None) => Value::Null,
                })
                .collect();
            json!({"cells": cells, "object": {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]}})
        })
        .collect();
    json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "Table",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": definitions, "rows": rows,
    })
}

/// The object or list shape a client asked for: metadata-only clients get
/// `PartialObjectMetadata`.
fn shape(obj: Value, metadata_only: bool) -> Value {
    if metadata_only {
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]})
    } else {
        obj
    }
}

fn list_options(q: &HashMap<String, String>) -> Result<ListOptions, ApiError> {
    Ok(ListOptions {
        labels: Selector::parse(q.get("labelSelector").map_or("", String::as_str))?,
        fields: Selector::parse(q.get("fieldSelector").map_or("", String::as_str))?,
        limit: q.get("limit").and_then(|l| l.parse().ok()),
        continue_token: q.get("continue").cloned().filter(|c| !c.is_empty()),
    })
}

fn delete_options(q: &HashMap<String, String>, body: &[u8]) -> DeleteOptions {
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

pub(crate) fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .or_else(|_| serde_yaml::from_slice(body))
        .map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON or YAML: {e}"))
        })
}

// Over 120 lines on purpose: the router, one arm per verb and subresource, as the API
// server's handler chain dispatches them; each arm calls the store.
/// Serves one request.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Bytes>) -> Response<ResponseBody> {
    let (parts, body) = req.into_parts();
    let mut q = query(&parts.uri);
    let routed = route(&lock(&shared.store), parts.uri.path());
    let mut target = match routed {
        Ok(Route::Discovery(v)) => return json_response(200, &v),
        Ok(Route::Resource(t)) => t,
        Err(e) => return error_response(&e),
    };
    let header_str = |h: header::HeaderName| {
        parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let content_type = header_str(header::CONTENT_TYPE);
    let accept = header_str(header::ACCEPT);
    let metadata_only = accept.contains("as=PartialObjectMetadata");
    let as_table = accept.contains("as=Table");
    let manager = q.get("fieldManager").cloned().unwrap_or_else(|| {
        let agent = header_str(header::USER_AGENT);
        agent
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()
    });
    // Protobuf bodies (what kubectl sends for built-in kinds) are not spoken here: a 415 says
    // so plainly, and a client that falls back to JSON on it does.
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return error_response(&ApiError::unsupported_media_type(
            "this in-memory API server speaks JSON and YAML only, not protobuf: send the body as application/json (kubectl: --output-version is not needed; set the client's content type to JSON)",
        ));
    }
    let mut verb = verb_of(&parts.method, &target, &q, &content_type);
    let resource = target.rt.plural.clone();
    let deprecation = target.rt.deprecation_warning.clone();
    // A request in a served version other than the storage version is served in the storage
    // version: its object converted on the way in, what it returns converted back.
    let mut content_type = content_type;
    let mut body = body;
    let viewed = lock(&shared.store).conversion_for(&target.rt);
    let view = match viewed {
        Some((conversion, storage)) => {
            let routes = lock(&shared.services).clone();
            match conversion::request(
                &shared,
                &routes,
                &conversion,
                &storage,
                &target,
                verb,
                &body,
                &content_type,
            )
            .await
            {
                Ok((as_verb, as_body, as_type)) => {
                    (verb, body, content_type) = (as_verb, as_body, as_type);
                }
                Err(e) => return error_response(&e),
            }
            let version = std::mem::replace(&mut target.rt, storage).version;
            Some(conversion::View {
                conversion,
                version,
                routes,
            })
        }
        None => None,
    };
    let body = if target.events_view {
        if let Some(selector) = q.get_mut("fieldSelector") {
            *selector = events::selector_to_core(selector);
        }
        match events_body_to_core(verb, &content_type, &body) {
            Ok(converted) => converted,
            Err(e) => return error_response(&e),
        }
    } else {
        body
    };

    let (latency, fault) = {
        let mut faults = lock(&shared.faults);
        let fault = faults.draw(verb, &resource, target.name.as_deref().unwrap_or_default());
        (faults.plan.latency, fault)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(e) = fault {
        lock(&shared.stats).record(verb, &resource, false, true);
        return error_response(&e);
    }
    if q.get("fieldValidation").is_some_and(|v| v == "Strict")
        && matches!(
            verb,
            Verb::Create | Verb::Update | Verb::Apply | Verb::Patch
        )
        && !content_type.starts_with("application/json-patch+json")
        && target.subresource.is_none()
        && let Ok(sent) = parse_body(&body)
    {
        let unknown = openapi::unknown_fields(&target.rt, &sent);
        if !unknown.is_empty() {
            let listed: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field {f:?}"))
                .collect();
            lock(&shared.stats).record(verb, &resource, false, false);
            return error_response(&ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
                target.rt.kind,
                target.rt.version,
                target.rt.kind,
                listed.join(", ")
            )));
        }
    }
    if verb == Verb::Watch {
        lock(&shared.stats).record(verb, &resource, false, false);
        let shown = if as_table {
            Shown::Table
        } else if metadata_only {
            Shown::Metadata
        } else {
            Shown::Object
        };
        let response = watch(shared, *target, &q, shown);
        return match view {
            Some(view) => view.watch(response),
            None => response,
        };
    }

    let (_admitting, admitted) =
        match admission::admission_of(&shared, &target, verb, &q, &body, &content_type, &manager)
            .await
        {
            Ok(admitted) => admitted,
            Err(e) => {
                lock(&shared.stats).record(verb, &resource, false, false);
                return error_response(&e);
            }
        };
    let result = serve(
        &shared,
        &target,
        verb,
        &q,
        &body,
        &content_type,
        &manager,
        metadata_only,
        admitted.patches,
    )
    .map(|(v, changed)| {
        if target.events_view {
            (events_body_to_view(v), changed)
        } else {
            (v, changed)
        }
    })
    .map(|(v, changed)| match (as_table, verb) {
        (true, Verb::List) => {
            let rv = lock(&shared.store).resource_version();
            let items = v["items"].as_array().map_or(&[][..], Vec::as_slice);
            (table(&target.rt, items, rv), changed)
        }
        (true, Verb::Get) => {
            let rv = lock(&shared.store).resource_version();
            (table(&target.rt, std::slice::from_ref(&v), rv), changed)
        }
        _ => (v, changed),
    });
    let changed = matches!(&result, Ok((_, true)));
    lock(&shared.stats).record(verb, &resource, changed, false);
    let result = match (result, &view) {
        (Ok((v, changed)), Some(view)) => view.response(v).await.map(|v| (v, changed)),
        (result, _) => result,
    };
    let mut response = match result {
        Ok((v, _)) => json_response(if verb == Verb::Create { 201 } else { 200 }, &v),
        Err(e) => error_response(&e),
    };
    // A webhook's warnings, and a deprecated version's, reach the client as the API server
    // sends them (kubectl prints each as `Warning: ...`).
    for warning in deprecation.into_iter().chain(admitted.warnings) {
        let text = format!("299 - {:?}", warning.replace(['\r', '\n'], " "));
        if let Ok(value) = header::HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

// Over 120 lines on purpose: one watch stream's life (initial list, bookmarks, events,
// timeouts, disconnect) as the API server serves it, in the order it happens.
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
fn scale(
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

/// A request body on the `events.k8s.io/v1` view, as the core Events store takes it.
fn events_body_to_core(verb: Verb, content_type: &str, body: &Bytes) -> Result<Bytes, ApiError> {
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

/// A response from the core Events store as the `events.k8s.io/v1` view shows it.
fn events_body_to_view(mut value: Value) -> Value {
    if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
        for item in items.iter_mut() {
            *item = events::to_view(item);
        }
        if value["kind"] == "EventList" {
            value["apiVersion"] = json!("events.k8s.io/v1");
        }
        return value;
    }
    events::to_view(&value)
}

/// How a watch shows each object: whole, as metadata, or as a `kubectl get` table row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shown {
    Object,
    Metadata,
    Table,
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

struct WatchFilter {
    rt: ResourceType,
    namespace: Option<String>,
    opts: ListOptions,
    shown: Shown,
    events_view: bool,
}

impl WatchFilter {
    /// One object as the watch sends it.
    fn present(&self, mut obj: Value, rv: u64) -> Value {
        obj["apiVersion"] = json!(self.rt.api_version());
        if self.events_view {
            obj = events::to_view(&obj);
        }
        match self.shown {
            Shown::Object => obj,
            Shown::Metadata => shape(obj, true),
            Shown::Table => table(&self.rt, std::slice::from_ref(&obj), rv),
        }
    }

    fn line(&self, change: &Change) -> Option<Bytes> {
        if change.group != self.rt.group || change.plural != self.rt.plural {
            return None;
        }
        if self
            .namespace
            .as_deref()
            .is_some_and(|ns| ns != change.namespace)
        {
            return None;
        }
        if !self
            .opts
            .labels
            .matches_labels(&change.object["metadata"]["labels"])
            || !self
                .opts
                .fields
                .matches_fields(&change.object, self.rt.selectable_fields())
                .unwrap_or(false)
        {
            return None;
        }
        Some(event_line(
            change.kind.as_str(),
            &self.present(change.object.clone(), change.rv),
        ))
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (kind, api_version) = match (self.shown, self.events_view) {
            (Shown::Metadata, _) => ("PartialObjectMetadata", "meta.k8s.io/v1".to_string()),
            (Shown::Table, _) => ("Table", "meta.k8s.io/v1".to_string()),
            (Shown::Object, true) => ("Event", "events.k8s.io/v1".to_string()),
            (Shown::Object, false) => (self.rt.kind.as_str(), self.rt.api_version()),
        };
        event_line(
            "BOOKMARK",
            &json!({"apiVersion": api_version, "kind": kind, "metadata": meta}),
        )
    }
}

/// A watch: replays what the client missed since its resourceVersion (or the current state
/// for a fresh or streaming-list watch), then streams live changes until the timeout, a cut,
/// or the client going away.
fn watch(
    shared: Arc<Shared>,
    target: Target,
    q: &HashMap<String, String>,
    shown: Shown,
) -> Response<ResponseBody> {
    let opts = match list_options(q) {
        Ok(o) => o,
        Err(e) => return error_response(&e),
    };
    let filter = WatchFilter {
        rt: target.rt.clone(),
        namespace: target.namespace.clone(),
        opts,
        shown,
        events_view: target.events_view,
    };
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let send_initial = q.get("sendInitialEvents").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();

    let (initial, receiver, rv_now) = {
        let store = lock(&shared.store);
        let receiver = store.subscribe();
        let rv_now = store.resource_version();
        let initial: Result<Vec<Bytes>, ApiError> =
            if send_initial || rv_param.is_empty() || rv_param == "0" {
                store
                    .list(&filter.rt, filter.namespace.as_deref(), &filter.opts)
                    .map(|(items, _)| {
                        items
                            .iter()
                            .map(|o| event_line("ADDED", &filter.present(o.clone(), rv_now)))
                            .collect()
                    })
            } else {
                match rv_param.parse::<u64>() {
                    Ok(rv) => store
                        .changes_since(&filter.rt, rv)
                        .map(|changes| changes.iter().filter_map(|c| filter.line(c)).collect()),
                    Err(_) => Err(ApiError::bad_request(format!(
                        "invalid resourceVersion {rv_param}"
                    ))),
                }
            };
        (initial, receiver, rv_now)
    };
    let mut initial = match initial {
        Ok(lines) => lines,
        Err(e) if e.code == 410 => vec![event_line("ERROR", &e.to_status())],
        Err(e) => return error_response(&e),
    };
    if send_initial {
        initial.push(filter.bookmark(rv_now, true));
    }
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(stream_watch(
        shared, filter, initial, receiver, rv_now, timeout, bookmarks, tx,
    ));
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(http_body::Frame::data(b)), rx))
    });
    let body = StreamBody::new(frames);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

#[allow(clippy::too_many_arguments)]
async fn stream_watch(
    shared: Arc<Shared>,
    filter: WatchFilter,
    initial: Vec<Bytes>,
    mut receiver: broadcast::Receiver<Arc<Change>>,
    mut last_rv: u64,
    timeout: Duration,
    bookmarks: bool,
    tx: mpsc::UnboundedSender<Bytes>,
) {
    let mut disconnect = shared.disconnect.subscribe();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    for line in initial {
        if tx.send(line).is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            change = receiver.recv() => match change {
                Ok(change) => {
                    if change.rv <= last_rv {
                        continue;
                    }
                    last_rv = change.rv;
                    if let Some(line) = filter.line(&change)
                        && (tx.send(line).is_err() || lock(&shared.faults).drop_watch())
                    {
                        return;
                    }
                }
                // A watcher too slow to keep up is cut, as the real server does.
                Err(_) => return,
            },
            _ = disconnect.changed() => return,
            () = &mut deadline => {
                if bookmarks {
                    let _ = tx.send(filter.bookmark(last_rv, false));
                }
                return;
            }
            () = tx.closed() => return,
        }
    }
}
