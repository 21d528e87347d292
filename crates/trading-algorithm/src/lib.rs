//! The TradingAlgorithm operator: seed 002 made real.
//!
//! For each `TradingAlgorithm` it runs `<name>-deployment` (the algorithm), `<name>-config`
//! (its configuration), `<name>-service` and `<name>-hpa`; reports phase, replicas, trades and
//! P&L; halts trading when the daily loss limit is breached; and stops trading gracefully
//! before a resource is deleted.

mod admission;
mod bench;
pub mod crd;
mod metrics;
mod reconcile;
mod report;
mod resources;
mod risk;
mod validate;

pub use resources::deployment::FALLBACK_IMAGE;
pub use risk::{RESUME_ANNOTATION, trading_day};

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::watcher;
use operator_core::descriptor::{Converged, ServedResource};
use operator_core::runtime::Runtime;
use operator_core::runtime::config::OperatorSettings;
use operator_core::{ChildKinds, ChildWatches};

use crate::crd::TradingAlgorithm;
use crate::metrics::TradingMetrics;
use crate::reconcile::TradingOperator;
use operator_core::annotations::ReadAnnotation;

/// The annotations a TradingAlgorithm's operator reads (see docs/trading-algorithm.md). The
/// resume's value is judged against the halt it names, in the risk guard.
pub const ANNOTATIONS: &[ReadAnnotation] = &[ReadAnnotation {
    key: RESUME_ANNOTATION,
    accepts: "the since of the halt it lifts (status.riskHalt.since)",
    valid: |_| true,
}];

operator_core::operator! {
    binary: ("trading-operator", "trading", OperatorSettings::NONE),
    resources: &[ServedResource::of::<TradingAlgorithm>(Converged::ReadyIn("Active"))],
    controllers: |rt| controllers(rt, STOP_TIMEOUT),
    metrics: TradingMetrics,
}

/// How long a deletion waits for the algorithm's pods to stop before it goes ahead anyway.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The child kinds of a TradingAlgorithm, declared once: watched as metadata, owned, pruned.
/// The Deployment's state (its pods) is cached too, for the pass to read.
pub fn child_kinds(rt: &Runtime) -> (ChildKinds, ChildWatches) {
    rt.child_kinds(IDENTITY)
        .kinds::<(Deployment, ConfigMap, Service)>()
        .kinds::<(HorizontalPodAutoscaler, NetworkPolicy)>()
        .observed::<Deployment>()
        .build()
}

/// The controller for `TradingAlgorithm`, watching its four child kinds (as metadata) and the
/// algorithms' reports.
pub fn controllers(rt: &Runtime, stop_timeout: Duration) -> Vec<BoxFuture<'static, ()>> {
    let labelled_reports = watcher::Config::default().labels(report::REPORT_LABEL);
    let (reports, report_stream) = rt.cached(labelled_reports, report::compact);
    let operator = TradingOperator {
        reports,
        metrics: TradingMetrics::register(rt.metrics()),
        stop_timeout,
    };
    let controller = rt
        .operator_controller::<TradingAlgorithm, _>(IDENTITY, operator, child_kinds(rt))
        .watches_stream(report_stream, |cm| report::owner_of(&cm));
    vec![controller.run(reconcile::reconcile).boxed()]
}
