//! The load `cargo xtask bench` puts on the operator, and the naive baseline its figures
//! are compared with: the same builders, every child and the status replaced on every pass.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use operator_core::OptionalChild;
use operator_core::builder::WorkloadDefaults;
use operator_core::tooling::{BenchWorkload, NaiveBaseline, NaivePass, NaiveReconcile, SpecChange};
use serde_json::{json, to_value};

use crate::crd::SagaOrchestrator;
use crate::definitions::{self, Held, InFlight};
use crate::dependencies::Dependencies;
use crate::reconcile::{Observed, observed_status};
use crate::resources::desired_children;

/// N resources of the operator's kind, and the spec change the benchmark times.
pub(crate) const WORKLOAD: BenchWorkload = BenchWorkload {
    namespace: "payments",
    setup: &[
        "apiVersion: v1\nkind: Secret\nmetadata: {name: saga-store, namespace: payments}\nstringData: {password: bench}\n",
    ],
    spec: || {
        json!({
            "image": "registry.example/saga-orchestrator:1.0.0",
            "version": "1.0.0",
            "replicas": 2,
            "persistence": {"type": "redis", "clusterName": "saga-store", "secretName": "saga-store"},
            "sagas": [{
                "name": "refund",
                "timeout": "1m",
                "steps": [
                    {"name": "debit", "service": "ledger", "timeout": "5s",
                     "action": {"method": "POST", "path": "/debit"},
                     "compensation": {"method": "POST", "path": "/credit"}},
                    {"name": "notify", "service": "notifier", "timeout": "5s",
                     "action": {"method": "POST", "path": "/notify"},
                     "compensation": {"method": "DELETE", "path": "/notify"}},
                ],
            }],
        })
    },
    change: SpecChange::REPLICAS,
    lower_bound_converge: (
        11.0,
        "finalizer, 2 ConfigMaps, ServiceAccount, Role, RoleBinding, Deployment, Service, NetworkPolicy, PodDisruptionBudget, 1 status",
    ),
    naive: Some(NaiveBaseline::of::<SagaOrchestrator>()),
};

/// The naive pass: the spec's sagas as the only version (nothing in flight), every child,
/// and the status from the Deployment as observed.
impl NaiveReconcile for SagaOrchestrator {
    type Observed = Deployment;

    fn naive_pass(&self, deployment: Option<Deployment>) -> Result<NaivePass, String> {
        let status = deployment.and_then(|d| d.status).unwrap_or_default();
        let observed = Observed {
            replicas: status.replicas.unwrap_or_default(),
            ready_replicas: status.ready_replicas.unwrap_or_default(),
            ..Observed::default()
        };
        let namespace = self.namespace().unwrap_or_default();
        let current = self
            .spec
            .sagas
            .iter()
            .map(|s| definitions::render(&namespace, s))
            .collect();
        let plan = definitions::plan(Some(current), &Held::default(), &InFlight::new(), 3, false);
        let children = desired_children(self, &plan, "", &WorkloadDefaults::default());
        let status = observed_status(
            self,
            &plan,
            &observed,
            &[],
            &Dependencies::default(),
            OptionalChild::NotWanted,
            Timestamp::now(),
        );
        let objects = [
            to_value(&children.sagas),
            to_value(&children.service_account),
            to_value(&children.role),
            to_value(&children.role_binding),
        ]
        .into_iter()
        .chain(children.workload.objects());
        NaivePass::of(objects, &status)
    }
}
