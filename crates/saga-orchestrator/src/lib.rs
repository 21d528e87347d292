//! The SagaOrchestrator operator: seed 000's "Saga Orchestrator Operator — manages
//! distributed transactions", specified by its issue.
//!
//! For each `SagaOrchestrator` it runs the orchestrator (Deployment, Service, NetworkPolicy,
//! autoscaler, disruption budget, ServiceMonitor, and its own ServiceAccount allowed to write
//! only its in-flight report), renders the validated saga definitions into `<name>-sagas` as
//! content-hashed versions that are never pulled from under running instances, keeps the last
//! valid definitions when new ones are invalid, watches the PaymentServices the steps call
//! (and the CloudNativePG cluster) for `DependenciesReady`, and on deletion waits for running
//! sagas (finalizer `payments.io/saga-drain`, bounded by `drainTimeout`).

mod admission;
mod bench;
pub mod crd;
mod definitions;
mod dependencies;
mod metrics;
mod reconcile;
mod resources;
mod validate;

pub use reconcile::FINALIZER;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};
use operator_core::descriptor::{Converged, ServedResource};
use operator_core::monitoring::ServiceMonitor;
use operator_core::runtime::Runtime;
use operator_core::runtime::config::OperatorSettings;
use operator_core::{ChildKinds, ChildWatches};

use crate::crd::SagaOrchestrator;
use crate::dependencies::{PaymentServiceView, PostgresClusterView, callers_of, users_of};
use crate::metrics::SagaMetrics;
use crate::reconcile::SagaOperator;

operator_core::operator! {
    binary: ("saga-orchestrator-operator", "sagaOrchestrator", OperatorSettings::NONE),
    resources: &[ServedResource::of::<SagaOrchestrator>(Converged::ReadyIn("Running"))],
    controllers: controllers,
    metrics: SagaMetrics,
}

/// The child kinds of a SagaOrchestrator, declared once: watched as metadata, owned, pruned.
/// ServiceMonitors exist only where the Prometheus Operator is installed. The Deployment's
/// state (its pods) is cached too, for the pass to read; the ConfigMaps the orchestrator
/// keeps its own records in are read from the API server, never from a cache that may lag
/// its last write.
pub fn child_kinds(rt: &Runtime) -> (ChildKinds, ChildWatches) {
    rt.child_kinds(IDENTITY)
        .kinds::<(ConfigMap, ServiceAccount, Role, RoleBinding)>()
        .kinds::<(Deployment, Service)>()
        .kinds::<(NetworkPolicy, HorizontalPodAutoscaler, PodDisruptionBudget)>()
        .optional_kind::<ServiceMonitor>()
        .observed::<Deployment>()
        .build()
}

/// The controller for `SagaOrchestrator`, its children, and the PaymentServices (and
/// CloudNativePG clusters, when that CRD is installed at start) it depends on. `now` is the
/// clock (tests move it past a drain timeout).
pub fn controllers(rt: &Runtime) -> Vec<BoxFuture<'static, ()>> {
    let (services, service_stream) = rt.cached(watcher::Config::default(), |_| ());
    // CloudNativePG is optional: watched only where its CRD is served when the operator starts.
    let (clusters, cluster_writer) = reflector::store();
    let client = rt.client();
    let cluster_api = rt.watched_api::<PostgresClusterView>();
    let cnpg_served = Arc::new(AtomicBool::new(false));
    let mark_served = cnpg_served.clone();
    let mut writer = Some(cluster_writer);
    let cluster_stream = futures::stream::once(async move {
        let api_version = PostgresClusterView::api_version(&()).into_owned();
        match client.list_api_group_resources(&api_version).await {
            Ok(list) => list.resources.iter().any(|r| r.name == "clusters"),
            Err(_) => false,
        }
    })
    .flat_map(move |served| match (served, writer.take()) {
        (true, Some(writer)) => {
            mark_served.store(true, Ordering::SeqCst);
            watcher(cluster_api.clone(), watcher::Config::default())
                .default_backoff()
                .reflect(writer)
                .touched_objects()
                .boxed()
        }
        _ => futures::stream::empty().boxed(),
    })
    .boxed();
    let operator = SagaOperator {
        services,
        clusters,
        cnpg_served,
        metrics: SagaMetrics::register(rt.metrics()),
    };
    let controller =
        rt.operator_controller::<SagaOrchestrator, _>(IDENTITY, operator, child_kinds(rt));
    let (by_service, by_cluster) = (controller.store(), controller.store());
    let controller = controller
        .watches_stream(service_stream, move |ps: PaymentServiceView| {
            let all = by_service.state();
            callers_of(
                all.iter().map(|s| &**s),
                &ps.namespace().unwrap_or_default(),
                &ps.name_any(),
            )
        })
        .watches_stream(cluster_stream, move |c: PostgresClusterView| {
            let all = by_cluster.state();
            users_of(
                all.iter().map(|s| &**s),
                &c.namespace().unwrap_or_default(),
                &c.name_any(),
            )
        });
    vec![controller.run(reconcile::reconcile).boxed()]
}
