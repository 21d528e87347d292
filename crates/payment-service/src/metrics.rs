//! `payment_service_rollouts_total{namespace, strategy, result, cause}`: how rollouts end, so
//! a rolled-back upgrade can page someone. Labels are bounded: namespace, three strategies,
//! three results (`completed`, `rolled_back`, `failed` when a first version never came up) and
//! three causes (`none` for a completed one, `crash_loop`, `deadline`).
//! And `payment_service_last_backup_timestamp_seconds{namespace, name}`, a per-resource gauge
//! (removed with the service) the stale-backup alert reads.

use operator_core::metrics::{Metrics, ResourceGauge};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::crd::{PaymentService, StrategyType};
use crate::rollout::FailureCause;
use operator_core::dashboard::PanelKind::TimeSeries;
use operator_core::dashboard::{Row, panel, q};

/// How each service's rollouts ended.
pub const DASHBOARD: &[Row] = &[Row {
    title: "Rollouts",
    panels: &[panel(
        "Rollouts by result and cause (1h)",
        TimeSeries,
        "short",
        &[q(
            r#"sum by (namespace, result, cause) (increase(payment_service_rollouts_total{namespace=~"$namespace"}[1h]))"#,
            "{{namespace}} {{result}} {{cause}}",
        )],
    )],
}];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RolloutLabels {
    namespace: String,
    strategy: &'static str,
    result: &'static str,
    cause: &'static str,
}

/// How a rollout ended, and why when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutResult {
    Completed,
    RolledBack(FailureCause),
    Failed(FailureCause),
}

#[derive(Clone, Debug)]
pub struct PaymentMetrics {
    rollouts: Family<RolloutLabels, Counter>,
    /// When the service's last backup succeeded; only for services with backups on.
    pub last_backup: ResourceGauge<PaymentService>,
}

impl PaymentMetrics {
    /// Creates the metrics in the runtime's registry.
    pub fn register(metrics: &Metrics) -> Self {
        let rollouts = Family::default();
        metrics.register(
            "payment_service_rollouts",
            "Rollouts of PaymentService versions, by how they ended",
            rollouts.clone(),
        );
        Self {
            rollouts,
            last_backup: metrics.resource_gauge(
                "payment_service_last_backup_timestamp_seconds",
                "When the service's last backup succeeded (Unix seconds); only for services with backups on",
            ),
        }
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
                RolloutResult::RolledBack(_) => "rolled_back",
                RolloutResult::Failed(_) => "failed",
            },
            cause: match result {
                RolloutResult::Completed => "none",
                RolloutResult::RolledBack(cause) | RolloutResult::Failed(cause) => cause.as_str(),
            },
        };
        self.rollouts.get_or_create(&labels).inc();
    }
}
