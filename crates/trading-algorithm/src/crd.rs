//! `TradingAlgorithm` (`tradingalgorithms.fintech.io/v1`): the schema of seed 002 Task 1, field
//! by field, plus what a production CRD needs: descriptions on every field, a CEL rule
//! `minReplicas <= maxReplicas`, an optional `image`, a `suspend` kill switch, and
//! `observedGeneration` and the risk-halt record in status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;

/// A trading algorithm the operator runs, scales and guards.
#[operator_core::custom_resource(
    api = "fintech.io/v1",
    kind = "TradingAlgorithm",
    shortname = "ta",
    shortname = "algo",
    doc = "A trading algorithm the operator runs, scales and guards against its daily loss limit.",
    printcolumn(
        name = "Strategy",
        type_ = "string",
        json_path = ".spec.tradingStrategy.algorithm"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "Halted",
        type_ = "string",
        description = "The trading day a breach of the daily loss limit halted; empty while not halted (a manual suspend leaves it empty)",
        json_path = ".status.riskHalt.tradingDay"
    )
)]
pub struct TradingAlgorithmSpec {
    /// Where the algorithm reads prices from, how often, and for which symbols.
    pub market_data: MarketData,
    /// Limits the algorithm must trade within; breaching the daily loss limit halts it.
    pub risk_limits: RiskLimits,
    /// How many replicas run and how the autoscaler grows them.
    pub scaling_policy: ScalingPolicy,
    /// The strategy and its parameters.
    pub trading_strategy: Option<TradingStrategy>,
    /// Container image of the algorithm; defaults to the operator's configured `defaultImage`.
    pub image: Option<String>,
    /// Probes of the algorithm's container. Without them the pods get a TCP check of the
    /// port the Service targets (8080), so a pod counts as ready only once it listens.
    pub health_check: Option<operator_core::probes::HealthCheck>,
    /// ServiceAccount the pods run as, with its token mounted: for an algorithm that writes its
    /// own report ConfigMap (grant it `get`/`patch` on `<name>-report`). Without it the pods
    /// mount no token and cannot call the Kubernetes API.
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,
    /// Manual kill switch: `true` scales the algorithm to zero and keeps it there.
    pub suspend: Option<bool>,
}

/// Market data feed settings.
#[operator_core::schema]
pub struct MarketData {
    /// Exchanges or feeds to read, e.g. NYSE, NASDAQ, CME. At least one.
    #[schemars(length(min = 1))]
    pub sources: Vec<String>,
    /// How often prices update: a number and a unit, ms, s or m (e.g. 100ms, 1s).
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m)$"))]
    pub update_frequency: String,
    /// Instruments to trade, e.g. AAPL, MSFT.
    pub symbols: Option<Vec<String>>,
}

/// Risk limits.
#[operator_core::schema]
pub struct RiskLimits {
    /// Largest position the algorithm may hold, in account currency (1,000 to 10,000,000).
    #[schemars(range(min = 1000, max = 10_000_000))]
    pub max_position_size: i64,
    /// Loss in a UTC trading day at which trading halts until the next day (at least 10,000).
    #[schemars(range(min = 10_000, max = 100_000_000))]
    pub daily_loss_limit: i64,
    /// Loss on a position, as a fraction (0.01 to 0.50), at which it is closed.
    #[schemars(range(min = 0.01, max = 0.50))]
    pub stop_loss_percentage: Option<f64>,
}

/// Replica bounds and autoscaling.
#[operator_core::schema]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must be less than or equal to maxReplicas"))]
pub struct ScalingPolicy {
    /// Fewest replicas (1 to 10); the algorithm starts with this many.
    #[schemars(range(min = 1, max = 10))]
    pub min_replicas: i32,
    /// Most replicas the autoscaler may run (1 to 100).
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Average CPU utilization, in percent (10 to 90), the autoscaler aims for. Default 80.
    #[serde(default, rename = "targetCPUUtilization")]
    #[schemars(range(min = 10, max = 90))]
    pub target_cpu_utilization: Option<i32>,
    /// How fast the autoscaler adds replicas under load. Default moderate.
    pub scale_up_policy: Option<ScaleUpPolicy>,
}

/// How fast to scale up; see the operator's README for what each means.
#[operator_core::schema(Copy, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ScaleUpPolicy {
    Aggressive,
    #[default]
    Moderate,
    Conservative,
}

/// The strategy the algorithm runs.
#[operator_core::schema]
pub struct TradingStrategy {
    /// Strategy family.
    pub algorithm: Option<Algorithm>,
    /// Strategy parameters, passed to the algorithm as strings.
    pub parameters: Option<BTreeMap<String, String>>,
}

/// Strategy family.
#[operator_core::schema(Copy, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    Momentum,
    Arbitrage,
    MeanReversion,
    MlPredictor,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Momentum => "momentum",
            Self::Arbitrage => "arbitrage",
            Self::MeanReversion => "mean-reversion",
            Self::MlPredictor => "ml-predictor",
        }
    }
}

/// Lifecycle phase.
#[operator_core::schema(Copy, Eq)]
pub enum Phase {
    /// Created; no replica is ready yet.
    Pending,
    /// At least `minReplicas` replicas are ready.
    Active,
    /// The Deployment's replicas and ready replicas differ.
    Scaling,
    /// The spec cannot be realised; see the Ready condition.
    Error,
    /// Scaled to zero: `spec.suspend`, or the daily loss limit was breached.
    Suspended,
}

/// A halt after the daily loss limit was breached.
#[operator_core::schema]
pub struct RiskHalt {
    /// The UTC trading day (YYYY-MM-DD) of the breach; trading resumes the next day, or when
    /// annotation `fintech.io/resume-trading` is set to `since`.
    pub trading_day: String,
    /// Daily P&L when the halt began.
    #[serde(rename = "dailyPnL")]
    pub daily_pnl: f64,
    /// When the halt began.
    pub since: Time,
}

/// A halt lifted by a human: which halt, when, and by whom.
#[operator_core::schema]
pub struct RiskResume {
    /// The UTC trading day of the halt; the guard does not halt again that day.
    pub trading_day: String,
    /// When the halt that was lifted began (the annotation's value).
    pub halted_since: Time,
    /// Daily P&L when that halt began.
    #[serde(rename = "dailyPnL")]
    pub daily_pnl: f64,
    /// When the operator saw the acknowledgement and resumed trading.
    pub resumed_at: Time,
    /// The field manager that wrote annotation `fintech.io/resume-trading` (`kubectl-annotate`
    /// for kubectl), as the API server recorded it.
    pub resumed_by: String,
}

/// The audit record of an algorithm that was deleted: its last reported figures, written to
/// status (and the operator's log) before the finalizer goes.
#[operator_core::schema]
pub struct FinalReport {
    /// Trades of the last trading day, as last reported.
    pub total_trades: i64,
    /// Profit and loss of the last trading day, as last reported.
    #[serde(rename = "dailyPnL")]
    pub daily_pnl: f64,
    /// When trading stopped.
    pub stopped_at: Time,
}

/// Observed state, written by the operator.
#[operator_core::resource_status(phase = Phase, conditions = "Ready, and RiskLimitBreached while halted.")]
pub struct TradingAlgorithmStatus {
    /// Replicas the Deployment runs.
    pub replicas: Option<i32>,
    /// Replicas ready to trade.
    pub ready_replicas: Option<i32>,
    /// When the operator last changed something for this algorithm.
    pub last_reconciled: Option<Time>,
    /// Trades today, as the algorithm last reported.
    pub total_trades: Option<i64>,
    /// Profit and loss today, as the algorithm last reported.
    #[serde(rename = "dailyPnL")]
    pub daily_pnl: Option<f64>,
    /// Present while trading is halted by the risk guard.
    pub risk_halt: Option<RiskHalt>,
    /// The last halt a human lifted with annotation `fintech.io/resume-trading`.
    pub risk_resume: Option<RiskResume>,
    /// A value of annotation `fintech.io/resume-trading` that acknowledged no halt and was
    /// ignored (reported once with a Warning event).
    pub ignored_resume: Option<String>,
    /// Set when the algorithm is being deleted: its final figures.
    pub final_report: Option<FinalReport>,
}
