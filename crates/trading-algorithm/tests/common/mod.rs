//! The TradingAlgorithm harness: the shared one (`operator-harness`) with the CRD and the
//! `trading-platform` namespace, and helpers for the samples and their reports.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use operator_core::tooling::ChildRef;
use operator_harness::conformance::{self, Subject};
pub use operator_harness::{Harness, HarnessBuilder};
use serde_json::{Value, json};
use trading_algorithm::controllers;
pub use trading_algorithm::crd::TradingAlgorithm;

pub const NS: &str = "trading-platform";

/// The cluster with `crd` and the namespace; a graceful stop waits 5 s at most.
pub fn cluster_with_crd(crd: CustomResourceDefinition) -> HarnessBuilder {
    Harness::builder(|rt| controllers(rt, Duration::from_secs(5)))
        .crd(crd)
        .namespace(NS)
        .resource("fintech.io/v1", "tradingalgorithms")
}

pub fn cluster() -> HarnessBuilder {
    cluster_with_crd(TradingAlgorithm::crd())
}

pub async fn start_with_crd(crd: CustomResourceDefinition) -> Result<Harness> {
    cluster_with_crd(crd).start().await
}

pub async fn start() -> Result<Harness> {
    cluster().start().await
}

/// A running operator with one sample created and already Active.
pub async fn start_active(sample: &str) -> Result<Harness> {
    let h = start().await?;
    h.create(sample).await?;
    h.eventually("Active", |h| phase(h, sample) == "Active")
        .await?;
    Ok(h)
}

/// The TradingAlgorithm view of a harness: the samples, their status and reports.
pub trait Trading {
    fn algorithms(&self) -> Api<TradingAlgorithm>;
    /// Creates the sample `deploy/samples/<sample>.yaml`.
    async fn create(&self, sample: &str) -> Result<TradingAlgorithm>;
    fn status(&self, name: &str) -> Value;
    /// Publishes the algorithm's report for `day`, as the algorithm does.
    async fn report(&self, name: &str, day: &str, trades: i64, pnl: f64) -> Result<()>;
    /// The operator's trading day.
    fn today(&self) -> String;
}

impl Trading for Harness {
    fn algorithms(&self) -> Api<TradingAlgorithm> {
        Api::namespaced(self.client(), NS)
    }

    async fn create(&self, sample: &str) -> Result<TradingAlgorithm> {
        let ta: TradingAlgorithm = operator_harness::sample(sample)?;
        Ok(self
            .algorithms()
            .create(&PostParams::default(), &ta)
            .await?)
    }

    fn status(&self, name: &str) -> Value {
        self.status_of(name)
    }

    async fn report(&self, name: &str, day: &str, trades: i64, pnl: f64) -> Result<()> {
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

    fn today(&self) -> String {
        trading_algorithm::trading_day(self.now())
    }
}

pub fn phase(h: &Harness, name: &str) -> String {
    h.status(name)["phase"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The i-th algorithm of the conformance and fault tests.
pub fn algorithm(i: usize) -> Value {
    let spec = json!({
        "marketData": {"sources": ["NYSE"], "updateFrequency": "100ms", "symbols": ["AAPL"]},
        "riskLimits": {"maxPositionSize": 100000, "dailyLossLimit": 50000},
        "scalingPolicy": {"minReplicas": 1 + i % 3, "maxReplicas": 5, "scaleUpPolicy": "moderate"},
        "tradingStrategy": {"algorithm": "momentum", "parameters": {"lookbackPeriod": "5m"}}
    });
    operator_harness::resource::<TradingAlgorithm>(&format!("algo-{i:03}"), NS, spec)
}

/// The operator, as the conformance checks exercise it.
pub const CONFORMANCE: Subject = Subject {
    operator: &trading_algorithm::OPERATOR,
    harness: cluster,
    resource: algorithm,
    children: |name, _| {
        [
            ("apps/v1", "deployments", "deployment"),
            ("v1", "configmaps", "config"),
            ("v1", "services", "service"),
            ("autoscaling/v2", "horizontalpodautoscalers", "hpa"),
            ("networking.k8s.io/v1", "networkpolicies", "network"),
        ]
        .into_iter()
        .map(|(api_version, plural, suffix)| ChildRef {
            api_version,
            plural,
            name: format!("{name}-{suffix}"),
        })
        .collect()
    },
    kept_after_deletion: conformance::none,
    used_as_found: conformance::none,
    written_by_others: &["deployments", "horizontalpodautoscalers"],
};
