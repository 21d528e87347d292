//! The Kubernetes REST protocol over the store: routing, query parameters, list and watch
//! responses, discovery, and the fault and accounting hooks every request passes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::admission;
use crate::error::ApiError;
use crate::events;
use crate::faults::Verb;
use crate::openapi;
use crate::registry::ResourceType;
use crate::shared::{
    ResponseBody, Shared, Target, at_path, json_response, list_options, lock, parse_body, shape,
};
use crate::store::{Change, ListOptions, Store};
use crate::versioned;
use crate::write::{events_body_to_core, serve};

/// How long a watch lasts when the client names no `timeoutSeconds`.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

fn error_response(e: &ApiError) -> Response<ResponseBody> {
    let mut resp = json_response(e.code, &e.to_status());
    if let Some(secs) = e.retry_after
        && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
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
            match versioned::request(
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
            Some(versioned::View {
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
