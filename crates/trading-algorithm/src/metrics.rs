//! The domain gauges seed 002's dashboards read: `trading_algorithm_total_trades` and
//! `trading_algorithm_daily_pnl`, and what the alerts compare them with:
//! `trading_algorithm_daily_loss_limit` and `trading_algorithm_risk_halted`. One series per
//! algorithm (labelled by namespace and name, by design: each is a per-resource gauge),
//! removed when the algorithm is deleted.

use operator_core::metrics::{Metrics, ResourceGauge, ResourceGaugeF64};

use crate::crd::TradingAlgorithm;
use crate::report::Report;
use crate::risk::TradingState;
use operator_core::dashboard::PanelKind::{Stat, Table, TimeSeries};
use operator_core::dashboard::{Row, panel, per_resource, q};

/// Seed 002's dashboard: how many algorithms run, and each one's trading day against its
/// loss limit.
pub const DASHBOARD: &[Row] = &[Row {
    title: "Trading",
    panels: &[
        panel(
            "Trading algorithms",
            Stat,
            "short",
            &[q(
                r#"count(operator_resource_ready{controller="tradingalgorithm", namespace=~"$namespace"})"#,
                "algorithms",
            )],
        ),
        panel(
            "Daily P&L against the loss limit",
            TimeSeries,
            "currencyUSD",
            &[
                per_resource("trading_algorithm_daily_pnl", "P&L"),
                q(
                    r#"-trading_algorithm_daily_loss_limit{namespace=~"$namespace"}"#,
                    "{{namespace}}/{{name}} halts at",
                ),
            ],
        ),
        panel(
            "Trades today",
            TimeSeries,
            "short",
            &[per_resource("trading_algorithm_total_trades", "")],
        ),
        panel(
            "Halted by the risk guard",
            Table,
            "short",
            &[per_resource("trading_algorithm_risk_halted", "")],
        ),
    ],
}];

#[derive(Clone, Debug)]
pub struct TradingMetrics {
    total_trades: ResourceGauge<TradingAlgorithm>,
    daily_pnl: ResourceGaugeF64<TradingAlgorithm>,
    daily_loss_limit: ResourceGauge<TradingAlgorithm>,
    risk_halted: ResourceGauge<TradingAlgorithm>,
}

impl TradingMetrics {
    /// Creates the gauges in the runtime's registry.
    pub fn register(metrics: &Metrics) -> Self {
        Self {
            total_trades: metrics.resource_gauge(
                "trading_algorithm_total_trades",
                "Trades executed today, as the algorithm reported",
            ),
            daily_pnl: metrics.resource_gauge(
                "trading_algorithm_daily_pnl",
                "Profit and loss today, as the algorithm reported",
            ),
            daily_loss_limit: metrics.resource_gauge(
                "trading_algorithm_daily_loss_limit",
                "The algorithm's dailyLossLimit: trading halts when dailyPnL reaches minus this",
            ),
            risk_halted: metrics.resource_gauge(
                "trading_algorithm_risk_halted",
                "1 while the risk guard holds the algorithm halted, 0 otherwise",
            ),
        }
    }

    pub fn observe(&self, ta: &TradingAlgorithm, report: Option<&Report>, state: &TradingState) {
        let limit = ta.spec.risk_limits.daily_loss_limit;
        self.daily_loss_limit.of(ta).set(limit);
        self.risk_halted
            .of(ta)
            .set(i64::from(state.halt().is_some()));
        if let Some(r) = report {
            self.total_trades.of(ta).set(r.total_trades);
            self.daily_pnl.of(ta).set(r.daily_pnl);
        }
    }
}
