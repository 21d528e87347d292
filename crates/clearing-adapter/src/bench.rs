//! The load `cargo xtask bench` puts on the operator, and the naive baseline its figures
//! are compared with: the same builders, every child and the status replaced on every pass.

use k8s_openapi::jiff::Timestamp;
use operator_core::OptionalChild;
use operator_core::builder::WorkloadDefaults;
use operator_core::tooling::{BenchWorkload, NaiveBaseline, NaivePass, SpecChange};
use serde_json::{Value, json, to_value};

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
    naive: Some(NaiveBaseline::deployment(naive_pass)),
};

/// The naive pass: the routing from the recorded partner status (no checks), every child,
/// and the status from the Deployment as observed.
fn naive_pass(resource: &Value, deployment: Option<&Value>) -> Result<NaivePass, String> {
    let ca: ClearingAdapter = NaivePass::resource(resource)?;
    let status = NaivePass::deployment_status(deployment).unwrap_or_default();
    let workload = Workload {
        exists: true,
        current_replicas: status.replicas.unwrap_or_default(),
        ready_replicas: status.ready_replicas.unwrap_or_default(),
        ..Workload::default()
    };
    let now = Timestamp::now();
    let previous = ca.recorded_partners();
    let by_hand = partners::drained_by_hand(&ca);
    let plan = partners::plan(&ca.spec, &previous, &by_hand, None, now);
    let inputs = Inputs {
        weights: plan.weights(),
        ..Inputs::default()
    };
    let children = desired_children(&ca, &inputs, &WorkloadDefaults::default(), FALLBACK_IMAGE);
    let checks = Checks {
        enabled: false,
        monitor: OptionalChild::NotWanted,
        payments: business::off(&ca),
    };
    let mut objects = vec![to_value(&children.config_map)];
    objects.extend(children.workload.objects());
    NaivePass::of(
        objects,
        &observed_status(&ca, &plan, &workload, checks, now),
    )
}
