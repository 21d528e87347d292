//! The domain gauges seed 002's dashboards read: `trading_algorithm_total_trades` and
//! `trading_algorithm_daily_pnl`, and what the alerts compare them with:
//! `trading_algorithm_daily_loss_limit` and `trading_algorithm_risk_halted`. One series per
//! algorithm (labelled by namespace and name, by design: each is a per-resource gauge),
//! removed when the algorithm is deleted.

use std::sync::atomic::AtomicU64;

use kube::ResourceExt;
use operator_core::metrics::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::crd::TradingAlgorithm;
use crate::report::Report;
use crate::risk::TradingState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlgorithmLabels {
    namespace: String,
    name: String,
}

fn labels(ta: &TradingAlgorithm) -> AlgorithmLabels {
    AlgorithmLabels {
        namespace: ta.namespace().unwrap_or_default(),
        name: ta.name_any(),
    }
}

#[derive(Clone, Debug, Default)]
pub struct TradingMetrics {
    total_trades: Family<AlgorithmLabels, Gauge>,
    daily_pnl: Family<AlgorithmLabels, Gauge<f64, AtomicU64>>,
    daily_loss_limit: Family<AlgorithmLabels, Gauge>,
    risk_halted: Family<AlgorithmLabels, Gauge>,
}

impl TradingMetrics {
    /// Creates the gauges in the runtime's registry.
    pub fn register(metrics: &Metrics) -> Self {
        let gauges = Self::default();
        metrics.register(
            "trading_algorithm_total_trades",
            "Trades executed today, as the algorithm reported",
            gauges.total_trades.clone(),
        );
        metrics.register(
            "trading_algorithm_daily_pnl",
            "Profit and loss today, as the algorithm reported",
            gauges.daily_pnl.clone(),
        );
        metrics.register(
            "trading_algorithm_daily_loss_limit",
            "The algorithm's dailyLossLimit: trading halts when dailyPnL reaches minus this",
            gauges.daily_loss_limit.clone(),
        );
        metrics.register(
            "trading_algorithm_risk_halted",
            "1 while the risk guard holds the algorithm halted, 0 otherwise",
            gauges.risk_halted.clone(),
        );
        gauges
    }

    pub fn observe(&self, ta: &TradingAlgorithm, report: Option<&Report>, state: &TradingState) {
        self.daily_loss_limit
            .get_or_create(&labels(ta))
            .set(ta.spec.risk_limits.daily_loss_limit);
        self.risk_halted
            .get_or_create(&labels(ta))
            .set(i64::from(state.halt().is_some()));
        if let Some(r) = report {
            self.total_trades
                .get_or_create(&labels(ta))
                .set(r.total_trades);
            self.daily_pnl.get_or_create(&labels(ta)).set(r.daily_pnl);
        }
    }

    pub fn forget(&self, ta: &TradingAlgorithm) {
        self.total_trades.remove(&labels(ta));
        self.daily_pnl.remove(&labels(ta));
        self.daily_loss_limit.remove(&labels(ta));
        self.risk_halted.remove(&labels(ta));
    }
}
