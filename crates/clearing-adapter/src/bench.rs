//! The load `cargo xtask bench` puts on the operator, and the naive baseline its figures
//! are compared with: the same builders, every child and the status replaced on every pass.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use operator_core::OptionalChild;
use operator_core::builder::WorkloadDefaults;
use operator_core::tooling::{BenchWorkload, NaiveBaseline, NaivePass, NaiveReconcile, SpecChange};
use serde_json::{json, to_value};

use crate::FALLBACK_IMAGE;
use crate::crd::ClearingAdapter;
use crate::partners;
use crate::reconcile::{Checks, Workload, business, observed_status};
use crate::resources::{Inputs, desired_children};

/// N resources of the operator's kind, and the spec change the benchmark times.
pub(crate) const WORKLOAD: BenchWorkload = BenchWorkload {
    namespace: "payments",
    setup: &[],
    spec: || {
        // Loopback only: the benchmark's checks go to a closed local port.
        json!({
            "replicas": 2,
            "processorType": "card",
            "config": {
                "bankingPartners": [
                    {"name": "primary", "endpoint": "https://127.0.0.1:9", "weight": 80},
                    {"name": "secondary", "endpoint": "https://127.0.0.1:9", "weight": 20},
                ],
                "healthCheckInterval": "10m",
                "timeout": "1s",
            },
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        })
    },
    change: SpecChange::REPLICAS,
    lower_bound_converge: (
        7.0,
        "finalizer, ConfigMap, Deployment, Service, NetworkPolicy, PodDisruptionBudget, 1 status",
    ),
    naive: Some(NaiveBaseline::of::<ClearingAdapter>()),
};

/// The naive pass: the routing from the recorded partner status (no checks), every child,
/// and the status from the Deployment as observed.
impl NaiveReconcile for ClearingAdapter {
    type Observed = Deployment;

    fn naive_pass(&self, deployment: Option<Deployment>) -> Result<NaivePass, String> {
        let status = deployment.and_then(|d| d.status).unwrap_or_default();
        let workload = Workload {
            exists: true,
            current_replicas: status.replicas.unwrap_or_default(),
            ready_replicas: status.ready_replicas.unwrap_or_default(),
            ..Workload::default()
        };
        let now = Timestamp::now();
        let by_hand = partners::drained_by_hand(self);
        let plan = partners::plan(&self.spec, &self.recorded_partners(), &by_hand, None, now);
        let inputs = Inputs {
            weights: plan.weights(),
            ..Inputs::default()
        };
        let children =
            desired_children(self, &inputs, &WorkloadDefaults::default(), FALLBACK_IMAGE);
        let checks = Checks {
            enabled: false,
            monitor: OptionalChild::NotWanted,
            payments: business::off(self),
        };
        let mut objects = vec![to_value(&children.config_map)];
        objects.extend(children.workload.objects());
        NaivePass::of(
            objects,
            &observed_status(self, &plan, &workload, checks, now),
        )
    }
}
