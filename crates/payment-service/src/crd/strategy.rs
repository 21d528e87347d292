//! How a PaymentService rolls out a new version, as v2 says it: a union of `rollingUpdate`,
//! `canary` and `blueGreen` (v1's shape is in [`super::v1`]).

use super::{DURATION_PATTERN, MAX_CANARY_STEPS};

/// How new versions are rolled out: exactly one of `rollingUpdate`, `canary` and
/// `blueGreen` (none given: a rolling update).
#[operator_core::schema(Default)]
#[x_kube(validation = Rule::new("(has(self.rollingUpdate) ? 1 : 0) + (has(self.canary) ? 1 : 0) + (has(self.blueGreen) ? 1 : 0) == 1").message("set exactly one of rollingUpdate, canary and blueGreen"))]
pub struct DeploymentStrategy {
    /// The Deployment's own rolling update.
    pub rolling_update: Option<RollingUpdate>,
    /// A canary Deployment beside the stable one, growing step by step.
    pub canary: Option<Canary>,
    /// The new version comes up beside the old; the Service switches once it is available.
    pub blue_green: Option<BlueGreen>,
    /// Seconds a rollout (or a canary step) may take to become available before it counts as
    /// failed and is rolled back. Default 600, as in Kubernetes.
    #[schemars(range(min = 1, max = 86400))]
    pub progress_deadline_seconds: Option<i32>,
}

impl DeploymentStrategy {
    /// The member `type_` names, with `steps` if it is a canary: what v1 says, as v2 says it.
    pub fn of(
        type_: StrategyType,
        steps: Vec<CanaryStep>,
        progress_deadline_seconds: Option<i32>,
    ) -> Self {
        let mut strategy = Self {
            progress_deadline_seconds,
            ..Self::default()
        };
        match type_ {
            StrategyType::RollingUpdate => strategy.rolling_update = Some(RollingUpdate::default()),
            StrategyType::Canary => {
                strategy.canary = Some(Canary {
                    steps,
                    analysis: None,
                });
            }
            StrategyType::BlueGreen => strategy.blue_green = Some(BlueGreen::default()),
        }
        strategy
    }

    /// Which member is set (the first, should several be).
    pub fn type_(&self) -> StrategyType {
        if self.canary.is_some() {
            StrategyType::Canary
        } else if self.blue_green.is_some() {
            StrategyType::BlueGreen
        } else {
            StrategyType::RollingUpdate
        }
    }
}

/// A rolling update of the Deployment. No pod is taken down before its replacement is
/// available (`maxUnavailable` is 0), so a payment service never runs below its count.
#[operator_core::schema(Eq, Default)]
pub struct RollingUpdate {
    /// How many pods above the replica count the update may add at once: a number, or a
    /// percentage of the replicas (`25%`, the default). More is faster and needs more room.
    pub max_surge: Option<k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
}

/// A canary rollout.
#[operator_core::schema(Default)]
pub struct Canary {
    /// The steps, in order: each sends `setWeight` percent of the pods to the new version and
    /// holds for `pause`. Weights must increase.
    #[schemars(length(min = 1, max = MAX_CANARY_STEPS))]
    #[x_kube(validation = Rule::new(increasing_weights_rule()).message("canary step weights must increase"))]
    pub steps: Vec<CanaryStep>,
    /// How each step is judged before the next.
    pub analysis: Option<CanaryAnalysis>,
}

/// How a canary step is judged: its canary must be available within a deadline, then pass
/// every metric (Argo Rollouts' AnalysisTemplate is the model).
#[operator_core::schema(Eq, Default)]
pub struct CanaryAnalysis {
    /// Seconds each step's canary may take to become available before the rollout is rolled
    /// back; default the strategy's `progressDeadlineSeconds`. A small canary should be
    /// available quickly: a short deadline fails a bad version fast.
    #[schemars(range(min = 1, max = 86400))]
    pub step_deadline_seconds: Option<i32>,
    /// Measurements from Prometheus (the operator's `operator.prometheus`) that judge each
    /// step once its canary is available: a step moves on only when every metric has passed
    /// at least once in it; a metric failing more than its `failureLimit` rolls the version
    /// back; an answer that cannot be judged (Prometheus down, no series) holds the step.
    #[schemars(length(max = MAX_ANALYSIS_METRICS))]
    #[x_kube(validation = Rule::new("self.all(m, self.exists_one(n, n.name == m.name))").message("analysis metric names must be unique"))]
    pub metrics: Option<Vec<AnalysisMetric>>,
}

/// The most metrics a canary analysis may hold.
pub const MAX_ANALYSIS_METRICS: usize = 10;

/// What a metric's `successCondition` looks like: `result` compared with a number.
pub const SUCCESS_CONDITION_PATTERN: &str = r"^result *(<|<=|>|>=|==|!=) *-?[0-9]+(\.[0-9]+)?$";

/// One measurement of a canary, repeated every `interval` while its step lasts.
#[operator_core::schema(Eq)]
pub struct AnalysisMetric {
    /// Its name in status and events.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// A PromQL query whose answer is one number (the first series counts). `{{namespace}}`,
    /// `{{service}}` and `{{version}}` are replaced by the service's namespace, its name and
    /// the version under test.
    #[schemars(length(min = 1, max = 4096))]
    pub query: String,
    /// When a measurement passes: `result` compared with a number, e.g. `result >= 0.99` or
    /// `result < 0.5`.
    #[schemars(regex(pattern = SUCCESS_CONDITION_PATTERN))]
    pub success_condition: String,
    /// How often to measure while the step lasts, e.g. `30s` (the default), `1m`.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: Option<String>,
    /// How many failed measurements a step survives; one more rolls the version back.
    /// Default 0: the first failure does.
    #[schemars(range(min = 0, max = 100))]
    pub failure_limit: Option<i32>,
}

/// A blue-green rollout.
#[operator_core::schema(Eq, Default)]
pub struct BlueGreen {
    /// A Service of this name, created by the operator, selects the new version while it
    /// waits to be switched to, so it can be tried before it takes traffic.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub preview_service: Option<String>,
    /// Switch traffic as soon as the new version is available (default true). With false the
    /// switch waits until the annotation `payments.io/promote` names the new version.
    pub auto_promote: Option<bool>,
}

/// The CEL rule that canary weights increase: every step's weight above the one before.
/// CEL has no index ranges, so the comparisons are spelled out up to [`MAX_CANARY_STEPS`].
pub fn increasing_weights_rule() -> String {
    (1..MAX_CANARY_STEPS)
        .map(|i| {
            format!(
                "(size(self) <= {i} || self[{}].setWeight < self[{i}].setWeight)",
                i - 1
            )
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// Rollout strategy.
#[operator_core::schema(Copy, Eq, Default)]
pub enum StrategyType {
    /// The Deployment's own rolling update.
    #[default]
    RollingUpdate,
    /// The new version comes up beside the old; the Service switches once it is available.
    BlueGreen,
    /// A canary Deployment beside the stable one, growing step by step.
    Canary,
}

/// One canary step.
#[operator_core::schema]
pub struct CanaryStep {
    /// Percent of the pods that run the new version (1 to 100).
    #[schemars(range(min = 1, max = 100))]
    pub set_weight: i32,
    /// How long to hold this step while the canary stays ready; none: move on once ready.
    pub pause: Option<Pause>,
}

/// A pause.
#[operator_core::schema]
pub struct Pause {
    /// e.g. `30s`, `5m`, `1h`.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub duration: String,
}
