//! A cluster for TradingAlgorithm tests: testkit with the CRD, the namespace, the simulated
//! workload controllers, and a running operator whose clock tests move forward.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use operator_core::ControllerSettings;
use operator_core::runtime::config::RuntimeConfig;
use operator_core::runtime::{self, metrics::Metrics};
use serde_json::{Value, json};
use testkit::{ApiServer, Workloads};
use tokio::sync::watch;
use trading_algorithm::crd::TradingAlgorithm;
use trading_algorithm::{Options, controllers};

pub const NS: &str = "trading-platform";

/// A cluster with the CRD (`crd`), the namespace, the simulated workload controllers and a
/// running operator whose clock can be moved forward.
pub struct Harness {
    pub server: ApiServer,
    pub workloads: Workloads,
    pub clock_offset: Arc<AtomicI64>,
    pub metrics: Metrics,
    pub stop: watch::Sender<bool>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

pub async fn start_with_crd(crd: CustomResourceDefinition) -> Result<Harness> {
    let server = ApiServer::new();
    let client = server.client();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await?;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let workloads = server.simulate_workloads();
    let clock_offset = Arc::new(AtomicI64::new(0));
    let offset = clock_offset.clone();
    let options = Options {
        stop_timeout: Duration::from_secs(5),
        now: Arc::new(move || {
            Timestamp::now() + SignedDuration::from_secs(offset.load(Ordering::SeqCst))
        }),
    };
    let config = RuntimeConfig::standalone(ControllerSettings {
        resync: Duration::from_millis(300),
        ..ControllerSettings::default()
    });
    let metrics = Metrics::new();
    let (stop, _) = runtime::spawn(client, config, metrics.clone(), move |rt| {
        controllers(rt, options)
    });
    Ok(Harness {
        server,
        workloads,
        clock_offset,
        metrics,
        stop,
    })
}

pub async fn start() -> Result<Harness> {
    start_with_crd(TradingAlgorithm::crd()).await
}

/// A running operator with one sample created and already Active.
pub async fn start_active(sample: &str) -> Result<Harness> {
    let h = start().await?;
    h.create(sample).await?;
    h.eventually("Active", |h| phase(h, sample) == "Active")
        .await?;
    Ok(h)
}

impl Harness {
    pub fn client(&self) -> kube::Client {
        self.server.client()
    }

    pub fn algorithms(&self) -> Api<TradingAlgorithm> {
        Api::namespaced(self.client(), NS)
    }

    pub async fn create(&self, sample: &str) -> Result<TradingAlgorithm> {
        let path = format!(
            "{}/../../deploy/samples/{sample}.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let ta: TradingAlgorithm =
            serde_yaml::from_str(&std::fs::read_to_string(&path).context(path)?)?;
        Ok(self
            .algorithms()
            .create(&PostParams::default(), &ta)
            .await?)
    }

    pub fn get(&self, api_version: &str, plural: &str, name: &str) -> Option<Value> {
        self.server.object(api_version, plural, NS, name)
    }

    pub fn status(&self, name: &str) -> Value {
        self.get("fintech.io/v1", "tradingalgorithms", name)
            .map(|o| o["status"].clone())
            .unwrap_or_default()
    }

    pub fn events(&self, reason: &str) -> Vec<Value> {
        self.server
            .objects("events.k8s.io/v1", "events")
            .into_iter()
            .filter(|e| e["reason"] == reason)
            .collect()
    }

    /// Polls `check` (10 s at most).
    pub async fn eventually(&self, what: &str, mut check: impl FnMut(&Self) -> bool) -> Result<()> {
        for _ in 0..400 {
            if check(self) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!(
            "timed out waiting for {what}; status: {}",
            self.status("momentum-trader-prod")
        )
    }

    pub async fn report(&self, name: &str, day: &str, trades: i64, pnl: f64) -> Result<()> {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-report"), "labels": {"fintech.io/report-for": name}},
            "data": {"tradingDay": day, "totalTrades": trades.to_string(), "dailyPnL": pnl.to_string()}
        }))?;
        let api: Api<ConfigMap> = Api::namespaced(self.client(), NS);
        api.patch(
            &format!("{name}-report"),
            &PatchParams::apply("algorithm").force(),
            &Patch::Apply(&cm),
        )
        .await?;
        Ok(())
    }

    pub fn today(&self) -> String {
        trading_algorithm::risk::trading_day(
            Timestamp::now() + SignedDuration::from_secs(self.clock_offset.load(Ordering::SeqCst)),
        )
    }
}

pub fn phase(h: &Harness, name: &str) -> String {
    h.status(name)["phase"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
