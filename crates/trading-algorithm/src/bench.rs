//! The load `cargo xtask bench` puts on the operator, and the naive baseline its figures
//! are compared with: the same builders, every child and the status replaced on every pass.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use operator_core::builder::WorkloadDefaults;
use operator_core::tooling::{BenchWorkload, ChildRef, SpecChange};
use operator_core::tooling::{NaiveBaseline, NaivePass, NaiveReconcile};
use serde_json::{json, to_value};

use crate::crd::TradingAlgorithm;
use crate::reconcile::observed_status;
use crate::resources::{deployment_name, desired_children};
use crate::risk::{Assessment, Resume, TradingState};

/// N resources of the operator's kind, and the spec change the benchmark times.
pub(crate) const WORKLOAD: BenchWorkload = BenchWorkload {
    namespace: "trading-platform",
    setup: &[],
    spec: || {
        json!({
            "marketData": {
                "sources": ["NYSE", "NASDAQ"],
                "updateFrequency": "100ms",
                "symbols": ["AAPL", "MSFT"],
            },
            "riskLimits": {"maxPositionSize": 1_000_000, "dailyLossLimit": 50_000},
            "scalingPolicy": {"minReplicas": 2, "maxReplicas": 5, "scaleUpPolicy": "moderate"},
            "tradingStrategy": {"algorithm": "momentum", "parameters": {"lookbackPeriod": "10m"}},
        })
    },
    change: SpecChange {
        patch: |max| json!({"spec": {"scalingPolicy": {"maxReplicas": max}}}),
        child: |name| {
            ChildRef::new(
                "autoscaling/v2",
                "horizontalpodautoscalers",
                format!("{name}-hpa"),
            )
        },
        shown: |hpa, max| hpa["spec"]["maxReplicas"].as_i64() == Some(max),
        first_target: 6,
        lower_bound: (2.0, "the HPA, the status"),
    },
    lower_bound_converge: (6.0, "5 children, 1 status"),
    naive: Some(NaiveBaseline::of::<TradingAlgorithm>()),
};

/// The naive pass: every child, and the status from the Deployment as observed, with the
/// algorithm trading (the benchmark's algorithms never report a loss).
impl NaiveReconcile for TradingAlgorithm {
    type Observed = Deployment;

    fn observed_name(name: &str) -> String {
        deployment_name(name)
    }

    fn naive_pass(&self, deployment: Option<Deployment>) -> Result<NaivePass, String> {
        let deployment = deployment.and_then(|d| d.status);
        let children = desired_children(self, &WorkloadDefaults::default(), false);
        let trading = Assessment {
            state: TradingState::Trading,
            resume: Resume::Nothing,
        };
        let now = Timestamp::now();
        let status = observed_status(self, deployment.as_ref(), &trading, None, None, true, now);
        let objects = [
            to_value(&children.config),
            to_value(&children.deployment),
            to_value(&children.service),
        ]
        .into_iter()
        .chain(children.hpa.iter().map(to_value));
        NaivePass::of(objects, &status)
    }
}
