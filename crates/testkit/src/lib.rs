//! An in-memory Kubernetes API server for tests, benchmarks and the demo.
//!
//! [`ApiServer`] is a `tower::Service` that speaks the Kubernetes REST protocol, so a real
//! `kube::Client` talks to it unchanged: `kube::Client::new(server.clone(), "default")`, or
//! [`ApiServer::client`]. It is faithful where operators depend on it — resourceVersion and
//! conflicts, generation, the status subresource, merge/JSON patches and server-side apply
//! with managed fields, finalizers, owner-reference garbage collection, selectors, list and
//! watch with resume and `410 Gone` — and lets tests inject faults and count requests.
//! What it does not model is listed in the crate's README.

mod admission;
pub mod conformance;
mod conversion;
mod error;
mod events;
mod faults;
mod fieldpath;
pub mod loopback;
mod managed;
mod openapi;
pub mod partner;
mod registry;
mod rules;
mod schema;
mod selector;
mod server;
mod shared;
mod sim;
mod store;
pub mod tls;
mod versioned;
pub mod webhook;
mod write;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use serde_json::Value;

pub use error::{ApiError, Cause};
pub use faults::{Counts, Fault, FaultRule, Faults, RequestStats, Verb};
pub use shared::ResponseBody;
pub use sim::{JobOutcome, Workloads};

use shared::{Shared, lock};

/// How many changes the server keeps for watches to resume from; older resourceVersions
/// get `410 Gone`, as a real API server's watch cache does.
pub const DEFAULT_HISTORY: usize = 10_000;

/// Why manifests could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {0}: {1}")]
    Read(std::path::PathBuf, #[source] std::io::Error),
    #[error("loading {0}: {1}")]
    Create(std::path::PathBuf, #[source] ApiError),
}

/// The in-memory API server. Clones share one store.
#[derive(Clone, Debug)]
pub struct ApiServer {
    shared: Arc<Shared>,
}

impl Default for ApiServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiServer {
    /// A server with the built-in kinds and the usual namespaces (`default`, `kube-system`, …).
    pub fn new() -> Self {
        Self::with_history(DEFAULT_HISTORY)
    }

    /// A server that keeps only `history` changes for watches to resume from.
    pub fn with_history(history: usize) -> Self {
        Self {
            shared: Arc::new(Shared::new(history, Faults::default())),
        }
    }

    /// A `kube::Client` whose every request this server answers; its default namespace is
    /// `default`.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.clone(), "default")
    }

    /// Installs a `CustomResourceDefinition` (or any object) from YAML or JSON, straight into
    /// the store; returns the stored object.
    pub fn create_from_yaml(&self, yaml: &str) -> Result<Value, ApiError> {
        let body: Value = serde_yaml::from_str(yaml)
            .map_err(|e| ApiError::bad_request(format!("not a Kubernetes object: {e}")))?;
        let api_version = body["apiVersion"].as_str().unwrap_or_default();
        let kind = body["kind"].as_str().unwrap_or_default();
        let namespace = body["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let mut store = lock(&self.shared.store);
        let rt = store
            .types()
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
            .ok_or_else(|| ApiError::not_found("kind", &format!("{api_version}/{kind}")))?;
        store
            .create(&rt, &namespace, body, "testkit")
            .map(|w| w.object)
    }

    /// Says that `address` (on this machine) serves Service `namespace/name` on `port`: a
    /// webhook whose `clientConfig` names that Service is called there, its certificate
    /// verified for `<name>.<namespace>.svc` as in a cluster.
    pub fn route_service(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
        address: std::net::SocketAddr,
    ) {
        lock(&self.shared.services)
            .insert((namespace.to_string(), name.to_string(), port), address);
    }

    /// Starts the simulated Deployment, Job and CronJob controllers (they run on the current
    /// tokio runtime) and returns the handle tests steer them with.
    pub fn simulate_workloads(&self) -> Workloads {
        Workloads::start(self.shared.clone())
    }

    /// Creates every object in the YAML files of `path` (a file or a directory; multi-document
    /// files split on `---`; `kustomization.yaml` skipped), CustomResourceDefinitions and
    /// Namespaces first so what depends on them loads after them. Returns the files loaded.
    pub fn load_manifests(
        &self,
        path: &std::path::Path,
    ) -> Result<Vec<std::path::PathBuf>, LoadError> {
        let files: Vec<std::path::PathBuf> = if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            let entries =
                std::fs::read_dir(path).map_err(|e| LoadError::Read(path.to_path_buf(), e))?;
            let mut files: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
                .collect();
            files.sort();
            files
        };
        let mut documents = Vec::new();
        for file in &files {
            let text =
                std::fs::read_to_string(file).map_err(|e| LoadError::Read(file.clone(), e))?;
            for doc in text.split("\n---") {
                if doc
                    .lines()
                    .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                {
                    let kind = serde_yaml::from_str::<Value>(doc)
                        .ok()
                        .and_then(|v| v["kind"].as_str().map(String::from));
                    let order = match kind.as_deref() {
                        Some("CustomResourceDefinition") => 0,
                        Some("Namespace") => 1,
                        _ => 2,
                    };
                    documents.push((order, file.clone(), doc.to_string()));
                }
            }
        }
        documents.sort_by_key(|(order, _, _)| *order);
        for (_, file, doc) in documents {
            self.create_from_yaml(&doc)
                .map_err(|e| LoadError::Create(file, e))?;
        }
        Ok(files)
    }

    /// Replaces the fault plan (and reseeds its random source).
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults::FaultState::new(faults);
    }

    /// Cuts every open watch now; clients must re-watch from their last resourceVersion.
    pub fn disconnect_watches(&self) {
        self.shared.disconnect.send_modify(|n| *n += 1);
    }

    /// The requests served so far.
    pub fn stats(&self) -> RequestStats {
        lock(&self.shared.stats).clone()
    }

    pub fn reset_stats(&self) {
        *lock(&self.shared.stats) = RequestStats::default();
    }

    /// The store's current resourceVersion; it moves on every change and never otherwise.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).resource_version()
    }

    /// Reads an object straight from the store (not counted as a request), by
    /// `apiVersion` and resource plural: `server.object("apps/v1", "deployments", "ns", "x")`.
    pub fn object(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let store = lock(&self.shared.store);
        if events::is_view(group, plural) {
            let rt = store.resolve("", "v1", "events")?;
            return store
                .get(&rt, namespace, name)
                .ok()
                .map(|e| events::to_view(&e));
        }
        let rt = store.resolve(group, version, plural)?;
        store.get(&rt, namespace, name).ok()
    }

    /// Applies a JSON merge patch straight to the store (not counted as a request): what a
    /// benchmark uses to change specs without adding to the operator's figures.
    pub fn merge_patch(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<Value, ApiError> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let mut store = lock(&self.shared.store);
        let rt = store
            .resolve(group, version, plural)
            .ok_or_else(|| ApiError::not_found("resource", plural))?;
        store
            .patch(
                &rt,
                namespace,
                name,
                store::PatchBody::Merge(patch),
                None,
                "testkit",
            )
            .map(|w| w.object)
    }

    /// Starts an audit trail of a resource (`"payments.io/v1", "paymentservices"`): every
    /// version its objects are written as from now on, deletions included, kept without limit
    /// (unlike the watch history). For tests that must see a state an object passed through
    /// just before it went.
    pub fn audit(&self, api_version: &str, plural: &str) {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        lock(&self.shared.store).audit(group, plural);
    }

    /// The versions written since [`Self::audit`] started, oldest first.
    pub fn audit_trail(&self, api_version: &str, plural: &str) -> Vec<Value> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        lock(&self.shared.store).audit_trail(group, plural)
    }

    /// Every object of a kind straight from the store, in all namespaces.
    pub fn objects(&self, api_version: &str, plural: &str) -> Vec<Value> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let store = lock(&self.shared.store);
        let view = events::is_view(group, plural);
        let resolved = if view {
            store.resolve("", "v1", "events")
        } else {
            store.resolve(group, version, plural)
        };
        let Some(rt) = resolved else {
            return Vec::new();
        };
        let items = store
            .list(&rt, None, &store::ListOptions::default())
            .map(|(items, _)| items)
            .unwrap_or_default();
        if view {
            items.iter().map(events::to_view).collect()
        } else {
            items
        }
    }
}

impl tower::Service<Request<kube::client::Body>> for ApiServer {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => Bytes::new(),
            };
            Ok(server::handle(shared, Request::from_parts(parts, bytes)).await)
        })
    }
}
