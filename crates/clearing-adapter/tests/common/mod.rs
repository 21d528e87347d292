//! The ClearingAdapter harness: the shared one (`operator-harness`) with the CRD, the
//! `payments` namespace and the sample's Secrets, and the operator run with a partner check
//! the test scripts (no network).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Result;
use clearing_adapter::controllers;
pub use clearing_adapter::crd::ClearingAdapter;
use clearing_adapter::health::{PartnerProbe, ProbeTarget, Verdict};
use futures::future::BoxFuture;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use operator_core::prometheus::MetricsQuery;
use operator_core::tooling::ChildRef;
#[allow(unused_imports)]
pub use operator_harness::condition;
use operator_harness::conformance::{self, Subject};
pub use operator_harness::{Harness, HarnessBuilder};
use serde_json::{Value, json};

pub const NS: &str = "payments";
pub const SAMPLE: &str = "card-clearing";

/// Partner name → healthy; partners not named are healthy.
#[derive(Clone, Debug, Default)]
pub struct ScriptedProbe {
    health: Arc<Mutex<BTreeMap<String, bool>>>,
    calls: Arc<Mutex<Vec<ProbeTarget>>>,
}

impl ScriptedProbe {
    pub fn set(&self, partner: &str, healthy: bool) {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(partner.into(), healthy);
    }

    /// The targets checked so far.
    pub fn calls(&self) -> Vec<ProbeTarget> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl PartnerProbe for ScriptedProbe {
    fn check<'a>(&'a self, target: &'a ProbeTarget) -> BoxFuture<'a, Verdict> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(target.clone());
        let healthy = self
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&target.partner)
            .copied()
            .unwrap_or(true);
        Box::pin(async move {
            if healthy {
                Verdict::healthy("HTTP 200")
            } else {
                Verdict::failed("HTTP 503")
            }
        })
    }
}

pub fn cluster_with(probe: ScriptedProbe) -> HarnessBuilder {
    cluster_reading(probe, None)
}

/// A cluster whose operator reads the adapters' payments from `prometheus`.
pub fn cluster_reading(
    probe: ScriptedProbe,
    prometheus: Option<Arc<dyn MetricsQuery>>,
) -> HarnessBuilder {
    Harness::builder(move |rt| controllers(rt, Arc::new(probe.clone()), prometheus.clone()))
        .crd(ClearingAdapter::crd())
        .namespace(NS)
        .resource("payments.io/v1", "clearingadapters")
}

pub fn cluster() -> HarnessBuilder {
    cluster_with(ScriptedProbe::default())
}

/// The Secrets the sample references.
pub const SAMPLE_SECRETS: &[(&str, &[&str])] = &[
    ("acme-bank-ca", &["ca.crt"]),
    ("acme-bank-client-tls", &["tls.crt", "tls.key"]),
    ("acme-bank-credentials", &["token"]),
    ("globex-clearing-ca", &["ca.crt"]),
    ("globex-clearing-credentials", &["api-key"]),
    ("card-clearing-encryption", &["key"]),
];

pub fn secret(name: &str, keys: &[&str]) -> Value {
    let data: BTreeMap<&str, &str> = keys.iter().map(|k| (*k, "cGxhY2Vob2xkZXI=")).collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, "data": data})
}

/// The sample as a value, to change before creating it.
pub fn sample() -> Result<Value> {
    operator_harness::sample(SAMPLE)
}

/// A running operator with the sample's Secrets, `probe` as its check, and `adapter`
/// created and Ready.
pub async fn start_with(probe: ScriptedProbe, adapter: Value) -> Result<Harness> {
    let h = cluster_with(probe).start().await?;
    h.create_secrets().await?;
    h.create_ready::<ClearingAdapter>(adapter).await?;
    Ok(h)
}

/// The ClearingAdapter view of a harness.
pub trait Adapters {
    fn adapters(&self) -> Api<ClearingAdapter>;
    async fn create_secrets(&self) -> Result<()>;
    fn status(&self, name: &str) -> Value;
    /// `weights.json` of the adapter's routing table.
    fn weights(&self, name: &str) -> Value;
    fn config_hash(&self, name: &str) -> Value;
    /// Touches the adapter so the operator looks at it now (after the clock moved).
    async fn poke(&self, name: &str, n: usize) -> Result<()>;
}

impl Adapters for Harness {
    fn adapters(&self) -> Api<ClearingAdapter> {
        Api::namespaced(self.client(), NS)
    }

    async fn create_secrets(&self) -> Result<()> {
        let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(self.client(), NS);
        for (name, keys) in SAMPLE_SECRETS {
            api.create(
                &PostParams::default(),
                &serde_json::from_value(secret(name, keys))?,
            )
            .await?;
        }
        Ok(())
    }

    fn status(&self, name: &str) -> Value {
        self.status_of(name)
    }

    fn weights(&self, name: &str) -> Value {
        self.get("v1", "configmaps", &format!("{name}-config"))
            .and_then(|c| c["data"]["weights.json"].as_str().map(String::from))
            .and_then(|w| serde_json::from_str(&w).ok())
            .unwrap_or_default()
    }

    fn config_hash(&self, name: &str) -> Value {
        self.get("apps/v1", "deployments", name)
            .map(|d| {
                d["spec"]["template"]["metadata"]["annotations"]["payments.io/config-hash"].clone()
            })
            .unwrap_or_default()
    }

    async fn poke(&self, name: &str, n: usize) -> Result<()> {
        let patch = json!({"metadata": {"annotations": {"test.payments.io/poke": n.to_string()}}});
        self.adapters()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}

/// The i-th adapter of the conformance and fault tests: no Secrets, checks on loopback only.
pub fn adapter(i: usize) -> Value {
    let spec = json!({
        "replicas": 1 + i as i64 % 3,
        "processorType": "upi",
        "config": {"bankingPartners": [{"name": "primary", "endpoint": "https://127.0.0.1:9", "weight": 1}]},
        "resources": {"requests": {"memory": "128Mi"}}
    });
    operator_harness::resource::<ClearingAdapter>(&format!("adapter-{i:03}"), NS, spec)
}

/// The operator, as the conformance checks exercise it.
pub const CONFORMANCE: Subject = Subject {
    operator: &clearing_adapter::OPERATOR,
    harness: cluster,
    resource: adapter,
    children: |name, _| {
        vec![
            ChildRef::new("apps/v1", "deployments", name),
            ChildRef::new("v1", "configmaps", format!("{name}-config")),
            ChildRef::new("v1", "services", name),
        ]
    },
    kept_after_deletion: conformance::none,
    used_as_found: conformance::none,
    written_by_others: &["deployments"],
};

/// Moves the clock past the check interval and has the operator look `times` times.
pub async fn checks(h: &Harness, times: usize) -> Result<()> {
    for i in 0..times {
        h.advance(31);
        let before = h.status(SAMPLE)["lastUpdateTime"].clone();
        let checked =
            |h: &Harness| h.status(SAMPLE)["bankingPartnerStatus"][0]["lastChecked"].clone();
        let last = checked(h);
        h.poke(SAMPLE, i).await?;
        h.eventually("the partners checked", |h| {
            checked(h) != last || h.status(SAMPLE)["lastUpdateTime"] != before
        })
        .await?;
    }
    Ok(())
}
