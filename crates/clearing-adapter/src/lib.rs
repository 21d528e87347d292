//! The ClearingAdapter operator: seed 001's `PaymentProcessor` made real.
//!
//! For each `ClearingAdapter` it runs the adapter's Deployment with its routing ConfigMap,
//! Service, NetworkPolicy, autoscaler, disruption budget and ServiceMonitor; checks every
//! banking partner's health endpoint over https, drains a partner that keeps failing (weight 0
//! in the routing table, without rolling the pods) and restores it once it recovers; refuses a
//! scale-down under high load; and on deletion drains the pods of their in-flight payments
//! (finalizer `payments.io/clearing-adapter-drain`, bounded by `drainTimeout`).

mod admission;
mod bench;
pub mod crd;
pub mod health;
mod metrics;
mod partners;
mod reconcile;
mod resources;
mod validate;

pub use partners::{DRAIN_ANNOTATION, names as drained_partners};
pub use reconcile::FINALIZER;

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use operator_core::annotations::ReadAnnotation;
use operator_core::descriptor::{Converged, ServedResource};
use operator_core::monitoring::ServiceMonitor;
use operator_core::prometheus::MetricsQuery;
use operator_core::runtime::Runtime;
use operator_core::runtime::config::OperatorSettings;
use operator_core::{ChildKinds, ChildWatches};
use serde::Deserialize;

use crate::crd::ClearingAdapter;
use crate::health::{HttpsProbe, PartnerProbe};
use crate::metrics::AdapterMetrics;
use crate::reconcile::AdapterOperator;
use crate::reconcile::business::LastReads;

operator_core::operator! {
    binary: ("clearing-adapter-operator", "clearingAdapter", OperatorSettings::of::<Settings>()),
    resources: &[ServedResource::of::<ClearingAdapter>(Converged::ReadyIn("Running"))],
    controllers: |rt| controllers(rt, Arc::new(HttpsProbe), rt.prometheus()),
    metrics: AdapterMetrics,
    demo_settings: "partnerHealthChecks: false",
}

/// The annotations this operator reads, with what it accepts.
pub const ANNOTATIONS: &[ReadAnnotation] = &[ReadAnnotation {
    key: DRAIN_ANNOTATION,
    accepts: "partner names separated by commas (acme-bank,globex-clearing)",
    valid: |v| {
        partners::names(v)
            .iter()
            .all(|n| operator_core::validation::resource_name(n, "").is_ok())
    },
}];

/// The adapter image when the config names none: the adapter release this operator ships with.
pub const FALLBACK_IMAGE: &str = concat!(
    "ghcr.io/payments-engine/clearing-adapter:",
    env!("CARGO_PKG_VERSION")
);

/// The operator's own fields of its `clearingAdapter:` config section.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// The adapter image ([`FALLBACK_IMAGE`] when not set).
    #[serde(default)]
    pub image: Option<String>,
    /// Check the partners' health endpoints (on by default). Off, every partner keeps its
    /// configured weight and `BankingPartnersHealthy` is Unknown: for environments where the
    /// operator may not reach the partners (the demo, air-gapped staging).
    #[serde(default = "operator_core::defaults::yes")]
    pub partner_health_checks: bool,
}

operator_core::default_from_fields!(Settings);

/// The child kinds of a ClearingAdapter, declared once: watched as metadata, owned, pruned.
/// ServiceMonitors exist only where the Prometheus Operator is installed. The Deployment's
/// and autoscaler's state (pods, load) is cached too, for the pass to read.
pub fn child_kinds(rt: &Runtime) -> (ChildKinds, ChildWatches) {
    rt.child_kinds(IDENTITY)
        .kinds::<(ConfigMap, Deployment, Service, NetworkPolicy)>()
        .kinds::<(HorizontalPodAutoscaler, PodDisruptionBudget)>()
        .optional_kind::<ServiceMonitor>()
        .observed::<Deployment>()
        .observed::<HorizontalPodAutoscaler>()
        .build()
}

/// The controller for `ClearingAdapter`, checking partners with `probe` and reading the
/// adapters' payments from `prometheus` (tests script both).
pub fn controllers(
    rt: &Runtime,
    probe: Arc<dyn PartnerProbe>,
    prometheus: Option<Arc<dyn MetricsQuery>>,
) -> Vec<BoxFuture<'static, ()>> {
    let settings = rt.config().own.get::<Settings>();
    let operator = AdapterOperator {
        image: settings
            .image
            .clone()
            .unwrap_or_else(|| FALLBACK_IMAGE.to_string()),
        probe: settings.partner_health_checks.then_some(probe),
        prometheus,
        last_reads: LastReads::default(),
        metrics: AdapterMetrics::register(rt.metrics()),
    };
    let controller =
        rt.operator_controller::<ClearingAdapter, _>(IDENTITY, operator, child_kinds(rt));
    vec![controller.run(reconcile::reconcile).boxed()]
}
