//! The TradingAlgorithm operator: seed 002 made real.
//!
//! For each `TradingAlgorithm` it runs `<name>-deployment` (the algorithm), `<name>-config`
//! (its configuration), `<name>-service` and `<name>-hpa`; reports phase, replicas, trades and
//! P&L; halts trading when the daily loss limit is breached; and stops trading gracefully
//! before a resource is deleted.

pub mod crd;
pub mod metrics;
pub mod reconcile;
pub mod report;
pub mod resources;
pub mod risk;
pub mod webhook;

use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use operator_core::runtime::{OperatorBinary, Runtime};
use operator_core::{Children, Clock, OperatorIdentity};

use crate::crd::TradingAlgorithm;
use crate::metrics::TradingMetrics;
use crate::reconcile::TradingOperator;

/// The operator's field manager, `app.kubernetes.io/managed-by`, and event reporter.
pub const IDENTITY: OperatorIdentity = OperatorIdentity {
    manager: "trading-operator",
    app_name: "trading-algorithm",
};

/// The binary: its identity and its section of the config file (seed 002: `trading`).
pub const BINARY: OperatorBinary = OperatorBinary {
    identity: IDENTITY,
    config_section: "trading",
    version: env!("CARGO_PKG_VERSION"),
};

/// How the controller is built; tests change the clock and the stop timeout.
#[derive(Clone)]
pub struct Options {
    pub stop_timeout: Duration,
    pub now: Clock,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("stop_timeout", &self.stop_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            stop_timeout: Duration::from_secs(60),
            now: operator_core::system_clock(),
        }
    }
}

/// The controller for `TradingAlgorithm`, watching its four child kinds (as metadata) and the
/// algorithms' reports.
pub fn controllers(rt: &Runtime, options: Options) -> Vec<BoxFuture<'static, ()>> {
    let client = rt.client();
    let namespace = rt.namespace();
    let (deployments, deployments_watch) = Children::watched(client.clone(), IDENTITY, namespace);
    let (configs, configs_watch) = Children::watched(client.clone(), IDENTITY, namespace);
    let (services, services_watch) = Children::watched(client.clone(), IDENTITY, namespace);
    let (hpas, hpas_watch) = Children::watched(client.clone(), IDENTITY, namespace);
    let (network_policies, network_policies_watch) =
        Children::watched(client.clone(), IDENTITY, namespace);
    let reports_api: Api<ConfigMap> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (reports, writer) = reflector::store();
    let report_stream = watcher(
        reports_api,
        watcher::Config::default().labels(report::REPORT_LABEL),
    )
    .default_backoff()
    .modify(report::compact)
    .reflect(writer)
    .touched_objects()
    .boxed();
    let operator = TradingOperator {
        deployments,
        configs,
        services,
        hpas,
        network_policies,
        reports,
        defaults: rt.config().workloads.clone(),
        metrics: TradingMetrics::register(rt.metrics()),
        stop_timeout: options.stop_timeout,
        now: options.now,
    };
    let controller = rt
        .controller::<TradingAlgorithm, _>(rt.context(IDENTITY, operator))
        .owns(deployments_watch)
        .owns(configs_watch)
        .owns(services_watch)
        .owns(hpas_watch)
        .owns(network_policies_watch)
        .watches_stream(report_stream, |cm| report::owner_of(&cm));
    vec![controller.run(reconcile::reconcile).boxed()]
}
