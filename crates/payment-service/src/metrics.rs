//! `payment_service_rollouts_total{namespace, strategy, result}`: how rollouts end, so a
//! rolled-back upgrade can page someone. Labels are bounded: namespace, three strategies and
//! three results (`completed`, `rolled_back`, `failed` when a first version never came up).
//! And `payment_service_last_backup_timestamp_seconds{namespace, name}`, a per-resource gauge
//! (removed with the service) the stale-backup alert reads.

use operator_core::metrics::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::crd::StrategyType;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RolloutLabels {
    namespace: String,
    strategy: &'static str,
    result: &'static str,
}

/// How a rollout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutResult {
    Completed,
    RolledBack,
    Failed,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    namespace: String,
    name: String,
}

fn service_labels(ps: &crate::crd::PaymentService) -> ServiceLabels {
    use kube::ResourceExt;
    ServiceLabels {
        namespace: ps.namespace().unwrap_or_default(),
        name: ps.name_any(),
    }
}

#[derive(Clone, Debug, Default)]
pub struct PaymentMetrics {
    rollouts: Family<RolloutLabels, Counter>,
    last_backup: Family<ServiceLabels, Gauge>,
}

impl PaymentMetrics {
    /// Creates the counter in the runtime's registry.
    pub fn register(metrics: &Metrics) -> Self {
        let own = Self::default();
        metrics.register(
            "payment_service_rollouts",
            "Rollouts of PaymentService versions, by how they ended",
            own.rollouts.clone(),
        );
        metrics.register(
            "payment_service_last_backup_timestamp_seconds",
            "When the service's last backup succeeded (Unix seconds); only for services with backups on",
            own.last_backup.clone(),
        );
        own
    }

    /// Records when the service's last backup succeeded.
    pub fn backed_up(&self, ps: &crate::crd::PaymentService, at: k8s_openapi::jiff::Timestamp) {
        self.last_backup
            .get_or_create(&service_labels(ps))
            .set(at.as_second());
    }

    /// Removes the service's series (it was deleted, or its backups were switched off).
    pub fn forget(&self, ps: &crate::crd::PaymentService) {
        self.last_backup.remove(&service_labels(ps));
    }

    pub fn rollout_ended(&self, namespace: &str, strategy: StrategyType, result: RolloutResult) {
        let labels = RolloutLabels {
            namespace: namespace.to_string(),
            strategy: match strategy {
                StrategyType::RollingUpdate => "RollingUpdate",
                StrategyType::BlueGreen => "BlueGreen",
                StrategyType::Canary => "Canary",
            },
            result: match result {
                RolloutResult::Completed => "completed",
                RolloutResult::RolledBack => "rolled_back",
                RolloutResult::Failed => "failed",
            },
        };
        self.rollouts.get_or_create(&labels).inc();
    }
}
