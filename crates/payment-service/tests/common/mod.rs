//! A cluster for PaymentService tests: testkit with the CRD, the `payments` namespace, the
//! simulated workload controllers, and a running operator whose clock tests move forward.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use operator_core::ControllerSettings;
use operator_core::runtime::config::RuntimeConfig;
use operator_core::runtime::{self, metrics::Metrics};
use payment_service::crd::PaymentService;
use payment_service::resources::service_monitor::ServiceMonitor;
use payment_service::{Options, controllers};
use serde_json::{Value, json};
use testkit::{ApiServer, Workloads};
use tokio::sync::watch;

pub const NS: &str = "payments";
/// The seed's example.
pub const SEED: &str = "payment-initiation-service";

pub struct Harness {
    pub server: ApiServer,
    pub workloads: Workloads,
    clock_offset: Arc<AtomicI64>,
    resync: Duration,
    /// The first operator's metrics registry.
    pub metrics: Metrics,
    stop: watch::Sender<bool>,
    operator: Option<tokio::task::JoinHandle<Result<(), runtime::RuntimeError>>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// What the cluster has before the operator starts.
#[derive(Default)]
pub struct Setup {
    /// Install the Prometheus Operator's ServiceMonitor CRD.
    pub prometheus_operator: bool,
    /// Leave out the seed's TLS Secret.
    pub without_tls_secret: bool,
    /// The resync interval (300 ms unless set).
    pub resync: Option<Duration>,
}

pub async fn start(setup: Setup) -> Result<Harness> {
    let server = ApiServer::new();
    let client = server.client();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.create(&PostParams::default(), &PaymentService::crd())
        .await?;
    if setup.prometheus_operator {
        crds.create(&PostParams::default(), &ServiceMonitor::crd())
            .await?;
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    if !setup.without_tls_secret {
        create_tls_secret(&client).await?;
    }
    let workloads = server.simulate_workloads();
    let clock_offset = Arc::new(AtomicI64::new(0));
    let metrics = Metrics::new();
    let resync = setup.resync.unwrap_or(Duration::from_millis(300));
    let (stop, operator) = run_operator(&server, clock_offset.clone(), metrics.clone(), resync);
    Ok(Harness {
        server,
        workloads,
        clock_offset,
        resync,
        metrics,
        stop,
        operator: Some(operator),
    })
}

/// Starts the operator on `server`, its clock `offset` seconds ahead.
fn run_operator(
    server: &ApiServer,
    offset: Arc<AtomicI64>,
    metrics: Metrics,
    resync: Duration,
) -> runtime::Background {
    let options = Options {
        now: Arc::new(move || {
            Timestamp::now() + SignedDuration::from_secs(offset.load(Ordering::SeqCst))
        }),
    };
    let config = RuntimeConfig::standalone(ControllerSettings {
        resync,
        ..ControllerSettings::default()
    });
    runtime::spawn(server.client(), config, metrics, move |rt| {
        controllers(rt, options)
    })
}

/// The seed's `payment-gateway-tls`, as cert-manager would issue it (the content is a
/// stand-in: nothing here reads it).
pub async fn create_tls_secret(client: &kube::Client) -> Result<()> {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "payment-gateway-tls"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "stand-in", "tls.key": "stand-in"}
    }))?;
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

/// The seed's example from deploy/samples.
pub fn seed_sample() -> Result<PaymentService> {
    let path = format!(
        "{}/../../deploy/samples/{SEED}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    Ok(serde_yaml::from_str(
        &std::fs::read_to_string(&path).context(path)?,
    )?)
}

/// The seed's example with `edit` applied to its spec (as JSON).
pub fn sample_with(edit: impl FnOnce(&mut Value)) -> Result<PaymentService> {
    let mut value = serde_json::to_value(seed_sample()?)?;
    edit(&mut value["spec"]);
    Ok(serde_json::from_value(value)?)
}

impl Harness {
    /// Stops the operator and starts a new one on the same cluster, as a rescheduled pod or
    /// a new leader would.
    pub async fn restart_operator(&mut self) -> Result<()> {
        self.stop.send_replace(true);
        if let Some(task) = self.operator.take() {
            task.await??;
        }
        let (stop, task) = run_operator(
            &self.server,
            self.clock_offset.clone(),
            Metrics::new(),
            self.resync,
        );
        self.stop = stop;
        self.operator = Some(task);
        Ok(())
    }

    pub fn client(&self) -> kube::Client {
        self.server.client()
    }

    pub fn services(&self) -> Api<PaymentService> {
        Api::namespaced(self.client(), NS)
    }

    pub async fn create(&self, ps: &PaymentService) -> Result<()> {
        self.services().create(&PostParams::default(), ps).await?;
        Ok(())
    }

    pub async fn patch_spec(&self, spec: Value) -> Result<()> {
        self.services()
            .patch(
                SEED,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": spec })),
            )
            .await?;
        Ok(())
    }

    pub fn get(&self, api_version: &str, plural: &str, name: &str) -> Option<Value> {
        self.server.object(api_version, plural, NS, name)
    }

    pub fn deployment(&self, name: &str) -> Option<Value> {
        self.get("apps/v1", "deployments", name)
    }

    pub fn image_of(&self, deployment: &str) -> Option<String> {
        self.deployment(deployment).and_then(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .map(String::from)
        })
    }

    pub fn status(&self) -> Value {
        self.get("payments.io/v1", "paymentservices", SEED)
            .map(|o| o["status"].clone())
            .unwrap_or_default()
    }

    pub fn condition(&self, type_: &str) -> Value {
        self.status()["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == type_)
            .cloned()
            .unwrap_or_default()
    }

    pub fn events(&self, reason: &str) -> Vec<Value> {
        self.server
            .objects("events.k8s.io/v1", "events")
            .into_iter()
            .filter(|e| e["reason"] == reason)
            .collect()
    }

    /// Moves the operator's clock forward.
    pub fn advance(&self, secs: i64) {
        self.clock_offset.fetch_add(secs, Ordering::SeqCst);
    }

    /// Polls `check` (15 s at most).
    pub async fn eventually(&self, what: &str, mut check: impl FnMut(&Self) -> bool) -> Result<()> {
        for _ in 0..600 {
            if check(self) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("timed out waiting for {what}; status: {}", self.status())
    }

    /// Creates `ps` and waits until it is Running.
    pub async fn create_running(&self, ps: &PaymentService) -> Result<()> {
        self.create(ps).await?;
        self.eventually("Running", |h| h.status()["phase"] == "Running")
            .await
    }
}
