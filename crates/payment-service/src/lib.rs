//! The PaymentService operator: seed 000 made real.
//!
//! For each `PaymentService` it runs the service's Deployment(s), Service, autoscaler,
//! disruption budget, service account, ServiceMonitor and backup CronJob; rolls out new
//! versions with a rolling update, a canary or blue-green, and rolls back the ones that do not
//! become available; and reports phase, version and conditions.

pub mod crd;
pub mod metrics;
pub mod reconcile;
pub mod resources;
pub mod rollout;
pub mod webhook;

use futures::FutureExt;
use futures::future::BoxFuture;
use operator_core::runtime::{OperatorBinary, Runtime};
use operator_core::{Children, Clock, OperatorIdentity};

use crate::crd::PaymentService;
use crate::metrics::PaymentMetrics;
use crate::reconcile::{PaymentOperator, PrometheusOperator};

/// The operator's field manager, `app.kubernetes.io/managed-by`, and event reporter.
pub const IDENTITY: OperatorIdentity = OperatorIdentity {
    manager: "payment-service-operator",
    app_name: "payment-service",
};

/// The binary: its identity and its section of the config file.
pub const BINARY: OperatorBinary = OperatorBinary {
    identity: IDENTITY,
    config_section: "paymentService",
    version: env!("CARGO_PKG_VERSION"),
};

/// How the controller is built; tests move the clock.
#[derive(Clone)]
pub struct Options {
    pub now: Clock,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options").finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            now: operator_core::system_clock(),
        }
    }
}

/// The controller for `PaymentService`, watching its child kinds as metadata. ServiceMonitors
/// are not watched: their kind exists only where the Prometheus Operator is installed.
pub fn controllers(rt: &Runtime, options: Options) -> Vec<BoxFuture<'static, ()>> {
    let client = rt.client();
    let ns = rt.namespace();
    let (deployments, deployments_watch) = Children::watched(client.clone(), IDENTITY, ns);
    let (services, services_watch) = Children::watched(client.clone(), IDENTITY, ns);
    let (hpas, hpas_watch) = Children::watched(client.clone(), IDENTITY, ns);
    let (pdbs, pdbs_watch) = Children::watched(client.clone(), IDENTITY, ns);
    let (service_accounts, service_accounts_watch) =
        Children::watched(client.clone(), IDENTITY, ns);
    let (cron_jobs, cron_jobs_watch) = Children::watched(client.clone(), IDENTITY, ns);
    let (roles, roles_watch) = Children::watched(client.clone(), IDENTITY, ns);
    let (role_bindings, role_bindings_watch) = Children::watched(client.clone(), IDENTITY, ns);
    let (volumes, volumes_watch) = Children::watched(client.clone(), IDENTITY, ns);
    let (network_policies, network_policies_watch) =
        Children::watched(client.clone(), IDENTITY, ns);
    let operator = PaymentOperator {
        deployments,
        services,
        hpas,
        pdbs,
        service_accounts,
        cron_jobs,
        roles,
        role_bindings,
        volumes,
        network_policies,
        service_monitors: Children::uncached(client, IDENTITY),
        prometheus_operator: PrometheusOperator::default(),
        defaults: rt.config().workloads.clone(),
        metrics: PaymentMetrics::register(rt.metrics()),
        now: options.now,
    };
    let controller = rt
        .controller::<PaymentService, _>(rt.context(IDENTITY, operator))
        .owns(deployments_watch)
        .owns(services_watch)
        .owns(hpas_watch)
        .owns(pdbs_watch)
        .owns(service_accounts_watch)
        .owns(cron_jobs_watch)
        .owns(roles_watch)
        .owns(role_bindings_watch)
        .owns(volumes_watch)
        .owns(network_policies_watch);
    vec![controller.run(reconcile::reconcile).boxed()]
}
