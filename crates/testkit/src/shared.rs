//! What every part of the REST protocol shares: the server's state, a request's target, and
//! the body and query helpers of more than one verb.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::faults::{FaultState, Faults, RequestStats};
use crate::registry::ResourceType;
use crate::selector::Selector;
use crate::store::{ListOptions, Store};
use crate::webhook::ServiceRoutes;

pub type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

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

/// The value at a simple JSONPath (`.status.phase`).
pub(crate) fn at_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
        .try_fold(obj, |v, p| v.get(p))
}

/// The object or list shape a client asked for: metadata-only clients get
/// `PartialObjectMetadata`.
pub(crate) fn shape(obj: Value, metadata_only: bool) -> Value {
    if metadata_only {
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]})
    } else {
        obj
    }
}

pub(crate) fn list_options(q: &HashMap<String, String>) -> Result<ListOptions, ApiError> {
    Ok(ListOptions {
        labels: Selector::parse(q.get("labelSelector").map_or("", String::as_str))?,
        fields: Selector::parse(q.get("fieldSelector").map_or("", String::as_str))?,
        limit: q.get("limit").and_then(|l| l.parse().ok()),
        continue_token: q.get("continue").cloned().filter(|c| !c.is_empty()),
    })
}

pub(crate) fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .or_else(|_| serde_yaml::from_slice(body))
        .map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON or YAML: {e}"))
        })
}
