//! What every operator's tests share: testkit with the operator's CRDs and namespaces and the
//! simulated workload controllers, the operator's controllers run on it (stopped, crashed and
//! restarted as a rescheduled pod or a new leader would be) with a clock tests move forward,
//! and [`conformance`], the checks every operator passes.
//!
//! An operator's `tests/common/mod.rs` builds its harness in a few lines and adds only its
//! domain's helpers (its resource's API, its sample, its status fields).

pub mod admission;
pub mod conformance;
pub mod foreign;
pub mod pod_security;
pub mod prometheus;
pub mod shipped;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use operator_core::metrics::{Metrics, RestClientLayer};
use operator_core::runtime::config::RuntimeConfig;
use operator_core::runtime::{self, Background, Runtime};
use operator_core::{Clock, ControllerSettings};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use testkit::{ApiServer, Workloads};
use tower::Layer as _;

/// An operator's controllers, built with the clock the harness moves.
pub type Controllers = Arc<dyn Fn(&Runtime) -> Vec<BoxFuture<'static, ()>> + Send + Sync>;

/// What the cluster holds before the operator starts, and how the operator runs.
#[must_use]
pub struct HarnessBuilder {
    crds: Vec<CustomResourceDefinition>,
    namespaces: Vec<String>,
    objects: Vec<Value>,
    settings: ControllerSettings,
    controllers: Controllers,
    resource: Option<(String, String)>,
}

impl std::fmt::Debug for HarnessBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HarnessBuilder")
            .field("namespaces", &self.namespaces)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl HarnessBuilder {
    /// Installs a CRD (the operator's own, or one it looks for, like the ServiceMonitor's).
    pub fn crd(mut self, crd: CustomResourceDefinition) -> Self {
        self.crds.push(crd);
        self
    }

    /// The operator's resource (`payments.io/v1`, `clearingadapters`), which
    /// [`Harness::status`] reads by name.
    pub fn resource(mut self, api_version: &str, plural: &str) -> Self {
        self.resource = Some((api_version.into(), plural.into()));
        self
    }

    /// A namespace to create; the first is where [`Harness::get`] looks.
    pub fn namespace(mut self, name: &str) -> Self {
        self.namespaces.push(name.to_string());
        self
    }

    /// Creates `object` (as JSON, namespace included) before the operator starts: a Secret
    /// the resources reference, another team's object.
    pub fn object(mut self, object: Value) -> Self {
        self.objects.push(object);
        self
    }

    /// How often a converged resource is reconciled again (300 ms unless set).
    pub fn resync(mut self, resync: Duration) -> Self {
        self.settings.resync = resync;
        self
    }

    /// Every controller setting at once (resync, concurrency, backoff, namespace).
    pub fn settings(mut self, settings: ControllerSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The cluster, with no operator running yet (tests that create objects first, or set
    /// faults before it starts, then call [`Harness::start_operator`]).
    pub async fn prepare(self) -> Result<Harness> {
        let server = ApiServer::new();
        let client = server.client();
        let crds = Api::<CustomResourceDefinition>::all(client.clone());
        for crd in &self.crds {
            crds.create(&PostParams::default(), crd).await?;
        }
        let namespaces = Api::<Namespace>::all(client);
        for name in &self.namespaces {
            let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
            namespaces.create(&PostParams::default(), &ns).await?;
        }
        for object in &self.objects {
            server
                .create_from_yaml(&serde_json::to_string(object)?)
                .map_err(|e| anyhow::anyhow!("creating {object}: {e:?}"))?;
        }
        let workloads = server.simulate_workloads();
        Ok(Harness {
            server,
            workloads,
            clock_offset: Arc::new(AtomicI64::new(0)),
            settings: self.settings,
            controllers: self.controllers,
            metrics: Metrics::new(),
            running: None,
            namespace: self.namespaces.first().cloned().unwrap_or_default(),
            resource: self.resource,
        })
    }

    /// The cluster with the operator running.
    pub async fn start(self) -> Result<Harness> {
        let mut harness = self.prepare().await?;
        harness.start_operator();
        Ok(harness)
    }
}

/// A cluster and the operator running on it.
pub struct Harness {
    pub server: ApiServer,
    pub workloads: Workloads,
    clock_offset: Arc<AtomicI64>,
    settings: ControllerSettings,
    controllers: Controllers,
    metrics: Metrics,
    running: Option<Background>,
    /// The first namespace created: where [`Harness::get`] looks.
    namespace: String,
    resource: Option<(String, String)>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("settings", &self.settings)
            .field("running", &self.running.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.running {
            stop.send_replace(true);
        }
    }
}

impl Harness {
    /// A harness for the controllers `controllers` builds; their runtime reads the
    /// harness's clock.
    pub fn builder(
        controllers: impl Fn(&Runtime) -> Vec<BoxFuture<'static, ()>> + Send + Sync + 'static,
    ) -> HarnessBuilder {
        HarnessBuilder {
            crds: Vec::new(),
            namespaces: Vec::new(),
            objects: Vec::new(),
            settings: ControllerSettings {
                resync: Duration::from_millis(300),
                ..ControllerSettings::default()
            },
            controllers: Arc::new(controllers),
            resource: None,
        }
    }

    /// Starts the operator (with a fresh metrics registry, as a new process has).
    pub fn start_operator(&mut self) {
        let clock = self.clock();
        let controllers = self.controllers.clone();
        self.metrics = Metrics::new();
        let mut config = RuntimeConfig::standalone(self.settings.clone());
        config.clock = clock;
        // The operator's requests are recorded as a deployed operator's are.
        let requests =
            RestClientLayer::new(&self.metrics, &"http://testkit".parse().expect("a URL"));
        let client = kube::Client::new(requests.layer(self.server.clone()), "default");
        self.running = Some(runtime::spawn(
            client,
            config,
            self.metrics.clone(),
            move |rt| controllers(rt),
        ));
    }

    /// Stops the operator as SIGTERM does: reconciles in flight finish first.
    pub async fn stop_operator(&mut self) -> Result<()> {
        if let Some((stop, task)) = self.running.take() {
            stop.send_replace(true);
            task.await??;
        }
        Ok(())
    }

    /// Kills the operator mid-flight: its whole runtime goes, with whatever it was doing.
    pub async fn crash_operator(&mut self) {
        if let Some((_, task)) = self.running.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stops the operator and starts a new one on the same cluster, as a rescheduled pod or
    /// a new leader would.
    pub async fn restart_operator(&mut self) -> Result<()> {
        self.stop_operator().await?;
        self.start_operator();
        Ok(())
    }

    /// The running operator's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The requests of several converged resyncs (1.5 s of the 300 ms resync), once the last
    /// writes of convergence and their echoes have settled; fails unless at least three
    /// reconciles ran meanwhile, so an empty count means no request, not no resync.
    pub async fn converged_resync_requests(&self) -> Result<testkit::RequestStats> {
        tokio::time::sleep(Duration::from_millis(800)).await;
        self.server.reset_stats();
        let before = self.reconciles();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let stats = self.server.stats();
        anyhow::ensure!(
            self.reconciles() >= before + 3,
            "the resyncs did not run: {} reconciles",
            self.reconciles() - before
        );
        Ok(stats)
    }

    /// How many reconciles the operator has finished, whatever their result (the sum of
    /// `controller_runtime_reconcile_total`): proof that resyncs ran.
    pub fn reconciles(&self) -> u64 {
        self.metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with("controller_runtime_reconcile_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    pub fn client(&self) -> kube::Client {
        self.server.client()
    }

    /// The object `name` of `api_version`/`plural` in the harness's namespace, as stored.
    pub fn get(&self, api_version: &str, plural: &str, name: &str) -> Option<Value> {
        self.server
            .object(api_version, plural, &self.namespace, name)
    }

    /// The status of the operator's resource `name` (`null` when it has none, or is gone).
    pub fn status_of(&self, name: &str) -> Value {
        let Some((api_version, plural)) = &self.resource else {
            return Value::Null;
        };
        self.get(api_version, plural, name)
            .map(|o| o["status"].clone())
            .unwrap_or_default()
    }

    /// The operator's clock: the wall clock, plus what [`advance`](Self::advance) added.
    pub fn clock(&self) -> Clock {
        let offset = self.clock_offset.clone();
        Clock::new(move || {
            Timestamp::now() + SignedDuration::from_secs(offset.load(Ordering::SeqCst))
        })
    }

    pub fn now(&self) -> Timestamp {
        (self.clock())()
    }

    /// Moves the operator's clock forward.
    pub fn advance(&self, secs: i64) {
        self.clock_offset.fetch_add(secs, Ordering::SeqCst);
    }

    /// The events with this reason.
    pub fn events(&self, reason: &str) -> Vec<Value> {
        self.server
            .objects("events.k8s.io/v1", "events")
            .into_iter()
            .filter(|e| e["reason"] == reason)
            .collect()
    }

    /// Waits until the operator's resource `name` says `Ready=True`.
    pub async fn ready(&self, name: &str) -> Result<()> {
        let ready = |h: &Self| condition(&h.status_of(name), "Ready")["status"] == "True";
        self.eventually(&format!("{name} Ready"), ready).await
    }

    /// Waits until condition `type_` of the operator's resource `name` has `reason`; returns
    /// its message.
    pub async fn until_reason(&self, name: &str, type_: &str, reason: &str) -> Result<String> {
        let reached = |h: &Self| condition(&h.status_of(name), type_)["reason"] == reason;
        self.eventually(&format!("{name} {type_} {reason}"), reached)
            .await?;
        let message = &condition(&self.status_of(name), type_)["message"];
        Ok(message.as_str().unwrap_or_default().to_string())
    }

    /// Creates `object` (JSON of the namespaced kind `K`, in the namespace it names), as
    /// `kubectl create` does; returns what the API server stored.
    pub async fn create_as<K: NamespacedKind>(&self, object: Value) -> Result<K> {
        let object: K = serde_json::from_value(object)?;
        let api: Api<K> = Api::namespaced(self.client(), &object.namespace().unwrap_or_default());
        Ok(api.create(&PostParams::default(), &object).await?)
    }

    /// [`Self::create_as`] the operator's resource, then waits until it is Ready.
    pub async fn create_ready<K: NamespacedKind>(&self, object: Value) -> Result<K> {
        let created: K = self.create_as(object).await?;
        self.ready(&created.name_any()).await?;
        Ok(created)
    }

    /// Merge-patches `name` of kind `K` in `ns` (`null` removes a field), as
    /// `kubectl patch --type merge` does.
    pub async fn merge<K: NamespacedKind>(&self, ns: &str, name: &str, patch: Value) -> Result<K> {
        let api: Api<K> = Api::namespaced(self.client(), ns);
        Ok(api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?)
    }

    /// Deletes the operator's resource `name` of kind `K` in `ns` and waits until it is gone
    /// (its finalizer, if any, released).
    pub async fn delete_until_gone<K: NamespacedKind>(&self, ns: &str, name: &str) -> Result<()> {
        let api: Api<K> = Api::namespaced(self.client(), ns);
        api.delete(name, &kube::api::DeleteParams::default())
            .await?;
        let kind = K::kind(&());
        let gone = |h: &Self| {
            let plural = K::plural(&());
            h.server
                .object(&K::api_version(&()), &plural, ns, name)
                .is_none()
        };
        self.eventually(&format!("{kind} {name} gone"), gone).await
    }

    /// Deletes namespace `ns` and waits until it is gone: the operator never holds a
    /// namespace's deletion. Returns `status.<field>` as the operator's resources there last
    /// carried it before they went (what the operator recorded while it cleaned up).
    pub async fn delete_namespace_keeping<T: DeserializeOwned>(
        &self,
        ns: &str,
        field: &str,
    ) -> Result<T> {
        let (api_version, plural) = self
            .resource
            .clone()
            .context("no resource of the operator")?;
        self.server.audit(&api_version, &plural);
        Api::<Namespace>::all(self.client())
            .delete(ns, &kube::api::DeleteParams::default())
            .await?;
        let gone = |h: &Self| h.server.object("v1", "namespaces", "", ns).is_none();
        self.eventually(&format!("namespace {ns} gone"), gone)
            .await?;
        self.server
            .audit_trail(&api_version, &plural)
            .into_iter()
            .rev()
            .find_map(|o| serde_json::from_value(o["status"][field].clone()).ok())
            .with_context(|| format!("status.{field} was written before the finalizer went"))
    }

    /// Polls `check` for 15 s at most; the error names what did not happen.
    pub async fn eventually(&self, what: &str, mut check: impl FnMut(&Self) -> bool) -> Result<()> {
        until(what, Duration::from_secs(15), || check(self)).await
    }
}

/// Polls `check` every 25 ms until it holds, for at most `limit`.
pub async fn until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{what} did not happen within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `metadata.name` of an object given as JSON (empty when it has none).
pub fn name_of(object: &Value) -> String {
    object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The seed sample `deploy/samples/<name>.yaml`, as users apply it.
pub fn sample<T: DeserializeOwned>(name: &str) -> Result<T> {
    let path = format!(
        "{}/../../deploy/samples/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    Ok(serde_yaml::from_str(&text)?)
}

/// The document of `kind` in the seed sample `deploy/samples/<name>.yaml` (a sample may
/// hold several objects).
pub fn sample_of_kind(name: &str, kind: &str) -> Result<Value> {
    let path = format!(
        "{}/../../deploy/samples/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    operator_core::manifests::first_of_kind(&text, kind)?
        .ok_or_else(|| anyhow::anyhow!("{path} holds no {kind}"))
}

/// A namespaced kind a test creates, patches and deletes.
pub trait NamespacedKind:
    kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + DeserializeOwned
    + serde::Serialize
{
}

impl<K> NamespacedKind for K where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + serde::Serialize
{
}

/// The value of environment variable `name` of a Deployment's first container (typed or
/// JSON).
pub fn env_value(deployment: &impl serde::Serialize, name: &str) -> Option<String> {
    let deployment = serde_json::to_value(deployment).ok()?;
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
        .map(str::to_string)
}

/// The names of a CRD's printer columns (its first version's), as `kubectl get` heads them.
pub fn printer_columns(crd: &Value) -> Vec<&str> {
    crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect()
}

/// The seed sample's object of kind `K` in `deploy/samples/<name>.yaml` as the API server
/// stores it (generation 1, UID `uid-<name>`): what unit tests of builders and status read.
pub fn stored<K>(name: &str) -> Result<K>
where
    K: kube::Resource<DynamicType = ()> + DeserializeOwned,
{
    let mut object: K = serde_json::from_value(sample_of_kind(name, &K::kind(&()))?)?;
    let meta = object.meta_mut();
    meta.uid = Some(format!("uid-{name}"));
    meta.generation = Some(1);
    Ok(object)
}

/// A resource of kind `K` as a test creates it: `name` in `namespace`, with `spec`.
pub fn resource<K: kube::Resource<DynamicType = ()>>(
    name: &str,
    namespace: &str,
    spec: Value,
) -> Value {
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
}

/// Every message of a list of field errors, joined: what a test looks for words in.
pub fn messages(errors: &[operator_core::FieldError]) -> String {
    errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The condition of `type_` in a status (as JSON); `null` when it is not set.
pub fn condition(status: &Value, type_: &str) -> Value {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or_default()
}
