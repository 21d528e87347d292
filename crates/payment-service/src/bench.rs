//! The load `cargo xtask bench` puts on the operator, and the naive baseline its figures
//! are compared with: the same builders, every child and the status replaced on every pass.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use operator_core::OptionalChild;
use operator_core::builder::WorkloadDefaults;
use operator_core::tooling::{BenchWorkload, NaiveBaseline, NaivePass, NaiveReconcile, SpecChange};
use serde_json::{json, to_value};

use crate::crd::PaymentService;
use crate::reconcile::{deployment_state, observed_status};
use crate::resources::{External, desired_children};
use crate::rollout::{self, RolloutInput};

/// N resources of the operator's kind, and the spec change the benchmark times.
pub(crate) const WORKLOAD: BenchWorkload = BenchWorkload {
    namespace: "payments",
    setup: &[],
    spec: || {
        json!({
            "version": "1.0.0",
            "image": "registry.example/payments:1.0.0",
            "replicas": 2,
            "config": {
                "database": {"clusterName": "db", "poolSize": 10},
                "features": {"enableIdempotencyCheck": true},
            },
            "security": {"rbac": {"enabled": true}},
        })
    },
    change: SpecChange::REPLICAS,
    lower_bound_converge: (
        6.0,
        "Deployment, Service, PodDisruptionBudget, ServiceAccount, NetworkPolicy, 1 status",
    ),
    naive: Some(NaiveBaseline::of::<PaymentService>()),
};

/// The naive pass: the service's Deployment as observed, the rollout planned from it, every
/// child and the status built as the operator builds them.
impl NaiveReconcile for PaymentService {
    type Observed = Deployment;

    fn naive_pass(&self, deployment: Option<Deployment>) -> Result<NaivePass, String> {
        let now = Timestamp::now();
        let observed: BTreeMap<_, _> = deployment
            .map(|d| (self.name_any(), deployment_state(&d)))
            .into_iter()
            .collect();
        let plan = rollout::plan(&RolloutInput::of(self, &observed, now));
        let external = External::default();
        let defaults = WorkloadDefaults::default();
        let children = desired_children(self, &plan, &defaults, crate::RELEASE_IMAGE, &external);
        let status = observed_status(self, &plan, &observed, OptionalChild::NotWanted, None, now);
        let objects = children
            .service_account
            .iter()
            .map(to_value)
            .chain(children.deployments.iter().map(to_value))
            .chain([to_value(&children.service)])
            .chain(children.pdb.iter().map(to_value));
        NaivePass::of(objects, &status)
    }
}
