//! `PaymentService` (`paymentservices.payments.io`): seed 000's example, field by field and
//! with the seed's names, plus what a production CRD needs: bounds and CEL rules for what is
//! plainly invalid, descriptions, `progressDeadlineSeconds`, and a status that records rollout
//! progress so a restarted operator resumes where it was.
//!
//! Two versions are served. `v2`, the types here, is stored and is what the operator reads;
//! its rollout strategy is a union (`rollingUpdate` | `canary` | `blueGreen`). `v1` (seed
//! 000's shape, [`v1`]) has a `type` beside `canarySteps`; [`conversion`] converts between
//! them without loss, and [`crd`] is the CRD with both versions.

pub mod conversion;
mod strategy;
pub mod v1;

pub use strategy::{
    AnalysisMetric, BlueGreen, Canary, CanaryAnalysis, CanaryStep, DeploymentStrategy,
    MAX_ANALYSIS_METRICS, Pause, RollingUpdate, SUCCESS_CONDITION_PATTERN, StrategyType,
    increasing_weights_rule,
};

use k8s_openapi::api::autoscaling::v2::MetricSpec;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Most canary steps a rollout may have (bounds the CEL rule that checks their order).
pub const MAX_CANARY_STEPS: usize = 10;

/// A label value: `version` is a pod label, so it has to be one.
const LABEL_VALUE: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";

/// A duration in one unit: `30s`, `5m`, `1h`.
pub const DURATION_PATTERN: &str = r"^[0-9]+(s|m|h)$";

/// A payment microservice the operator runs, upgrades, scales, heals and backs up.
#[operator_core::custom_resource(
    api = "payments.io/v2",
    kind = "PaymentService",
    shortname = "ps",
    doc = "A payment microservice: Deployment, Service, autoscaler, monitoring, disruption budget and backups, with safe upgrades.",
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.currentVersion"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.availableReplicas"
    )
)]
pub struct PaymentServiceSpec {
    /// The service's version, e.g. 1.5.0; also the pods' `version` label.
    #[schemars(length(min = 1, max = 63), regex(pattern = LABEL_VALUE))]
    pub version: String,
    /// The container image of this version.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Replicas to run. With autoscaling on, the fewest the autoscaler may run: its floor is
    /// the larger of this and `autoscaling.minReplicas` (at most `maxReplicas`), so raising
    /// it scales up at once and lowering it lets the autoscaler scale down again. Default 1.
    #[serde(default = "operator_core::defaults::int::<1>")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// Horizontal autoscaling; when enabled the autoscaler owns the replica count, above
    /// `replicas`.
    pub autoscaling: Option<Autoscaling>,
    /// CPU and memory requests and limits of the service container.
    pub resources: Option<ResourceRequirements>,
    /// Liveness and readiness probes.
    pub health_check: Option<HealthCheck>,
    /// Backing services and feature flags, passed to the service as environment variables;
    /// a change rolls the pods.
    pub config: Option<ServiceConfig>,
    /// Metrics scraping and tracing.
    pub monitoring: Option<Monitoring>,
    /// TLS, mesh mTLS and the service account.
    pub security: Option<Security>,
    /// How new versions are rolled out.
    pub deployment_strategy: Option<DeploymentStrategy>,
    /// Scheduled exports of this service's configuration.
    pub backup: Option<Backup>,
}

/// Horizontal autoscaling (autoscaling/v2).
#[operator_core::schema(Default)]
#[x_kube(validation = Rule::new("!has(self.minReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must be less than or equal to maxReplicas"))]
pub struct Autoscaling {
    /// Turns the autoscaler on.
    #[serde(default)]
    pub enabled: bool,
    /// Fewest replicas; `spec.replicas` when that is larger (at least 1).
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: Option<i32>,
    /// Most replicas.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU utilization, in percent of requests, to aim for.
    #[serde(default, rename = "targetCPUUtilizationPercentage")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// Average memory utilization, in percent of requests, to aim for.
    #[schemars(range(min = 1, max = 100))]
    pub target_memory_utilization_percentage: Option<i32>,
    /// Further metrics (autoscaling/v2 MetricSpecs), e.g. a queue length as an External metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
}

pub use operator_core::probes::{HealthCheck, HttpGet, HttpProbe};

/// Backing services and feature flags.
#[operator_core::schema(Default)]
pub struct ServiceConfig {
    /// The service's database.
    pub database: Option<Database>,
    /// The service's message queue.
    pub messaging: Option<Messaging>,
    /// The idempotency store.
    pub redis: Option<Redis>,
    /// Feature flags.
    pub features: Option<Features>,
}

/// Database settings.
#[operator_core::schema]
pub struct Database {
    /// The database cluster, e.g. a CloudNativePG Cluster's name.
    #[schemars(length(min = 1))]
    pub cluster_name: String,
    /// Connections in the service's pool.
    #[schemars(range(min = 1, max = 1000))]
    pub pool_size: Option<i32>,
}

/// Messaging settings.
#[operator_core::schema]
pub struct Messaging {
    /// Azure Service Bus namespace.
    #[schemars(length(min = 1))]
    pub service_bus_namespace: String,
    /// Queue the service consumes.
    #[schemars(length(min = 1))]
    pub queue_name: String,
}

/// Redis settings.
#[operator_core::schema]
pub struct Redis {
    /// The Redis cluster that holds idempotency keys.
    #[schemars(length(min = 1))]
    pub cluster_name: String,
}

/// Feature flags.
#[operator_core::schema(Default)]
#[x_kube(validation = Rule::new("!self.enableRateLimiting || has(self.rateLimitPerSecond)").message("rateLimitPerSecond is required when enableRateLimiting is true"))]
pub struct Features {
    /// Reject duplicate payment requests.
    #[serde(default)]
    pub enable_idempotency_check: bool,
    /// Score payments for fraud.
    #[serde(default)]
    pub enable_fraud_detection: bool,
    /// Limit requests per second.
    #[serde(default)]
    pub enable_rate_limiting: bool,
    /// The limit when rate limiting is on.
    #[schemars(range(min = 1))]
    pub rate_limit_per_second: Option<i32>,
}

/// Metrics and tracing.
#[operator_core::schema(Default)]
pub struct Monitoring {
    /// Prometheus scraping.
    pub prometheus: Option<Prometheus>,
    /// Jaeger tracing.
    pub tracing: Option<Tracing>,
}

/// Prometheus scraping: pod annotations, and a ServiceMonitor where the Prometheus Operator
/// is installed.
#[operator_core::schema]
pub struct Prometheus {
    /// Scrape this service.
    #[serde(default)]
    pub enabled: bool,
    /// The metrics port: 1024 or above (the pods hold no capability to bind a lower one) and
    /// not 8080, which serves traffic. Default 8081.
    #[serde(default = "operator_core::defaults::int::<8081>")]
    #[schemars(range(min = 1024, max = 65535))]
    #[x_kube(validation = Rule::new("self != 8080").message("port 8080 serves traffic; choose another metrics port"))]
    pub port: i32,
    /// The metrics path. Default /actuator/prometheus.
    #[serde(default = "default_metrics_path")]
    #[schemars(regex(pattern = r"^/\S*$"))]
    pub path: String,
}

fn default_metrics_path() -> String {
    "/actuator/prometheus".into()
}

/// Jaeger tracing.
#[operator_core::schema]
#[x_kube(validation = Rule::new("!self.enabled || has(self.jaegerEndpoint)").message("jaegerEndpoint is required when tracing is enabled"))]
pub struct Tracing {
    /// Export traces.
    #[serde(default)]
    pub enabled: bool,
    /// The collector's URL.
    #[schemars(regex(pattern = r"^https?://\S+$"))]
    pub jaeger_endpoint: Option<String>,
    /// Fraction of requests traced, 0 to 1. Default 0.1.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sampling_rate: Option<f64>,
}

/// TLS, mesh mTLS and the service account.
#[operator_core::schema(Default)]
pub struct Security {
    /// Serve TLS with a certificate from a Secret.
    pub tls: Option<Tls>,
    /// Istio mutual TLS: the pods get the sidecar.
    pub mtls: Option<Mtls>,
    /// A dedicated service account for the pods.
    pub rbac: Option<Rbac>,
}

/// TLS from a `kubernetes.io/tls` Secret, mounted at `/etc/payments/tls`.
#[operator_core::schema]
#[x_kube(validation = Rule::new("!self.enabled || has(self.secretName)").message("secretName is required when tls is enabled"))]
pub struct Tls {
    /// Serve TLS.
    #[serde(default)]
    pub enabled: bool,
    /// The Secret (in this namespace) holding `tls.crt` and `tls.key`.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
}

/// Istio mutual TLS.
#[operator_core::schema]
pub struct Mtls {
    /// Inject the Istio sidecar (`sidecar.istio.io/inject: "true"`).
    #[serde(default)]
    pub enabled: bool,
}

/// The pods' service account.
#[operator_core::schema]
pub struct Rbac {
    /// Create a ServiceAccount for the pods.
    #[serde(default)]
    pub enabled: bool,
    /// Its name; defaults to the PaymentService's name.
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,
}

/// Scheduled configuration exports. While they run, `retention` only grows: lowering it
/// would have the next run delete every export older than the new limit, so it takes a
/// deliberate step (disable, lower, enable), enforced by the API server itself.
#[operator_core::schema]
#[x_kube(validation = Rule::new("!oldSelf.enabled || self.retention >= oldSelf.retention")
    .field_path(".retention")
    .reason(Reason::FieldValueForbidden)
    .message(Message::Expression("'cannot fall from %d to %d days while backups are enabled: the next run would delete every export older than %d days. To lower it, set spec.backup.enabled to false first, then lower retention and enable again'.format([oldSelf.retention, self.retention, self.retention])".into())))]
pub struct Backup {
    /// Run the backup CronJob.
    #[serde(default)]
    pub enabled: bool,
    /// Cron schedule. Default `0 2 * * *`, in the time zone of the cluster's
    /// controller-manager (UTC on most clusters) unless `timeZone` names one.
    #[serde(default = "default_schedule")]
    #[schemars(regex(pattern = operator_core::validation::CRON_PATTERN))]
    pub schedule: String,
    /// IANA time zone of the schedule (e.g. `Europe/London`), set on the CronJob when given.
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,
    /// Days an export is kept. Default 30.
    #[serde(default = "operator_core::defaults::int::<30>")]
    #[schemars(range(min = 1, max = 3650))]
    pub retention: i32,
    /// Also commit the kept exports to a Git repository after each run.
    pub git: Option<GitBackup>,
}

/// A Git repository the backups are committed to (seed 000: "backs up configuration to
/// Git"), over HTTPS (Git's smart HTTP protocol). Each run commits, on the service's branch,
/// the exports the claim keeps: the branch's head holds the last `retention` days, its
/// history every export.
#[operator_core::schema]
pub struct GitBackup {
    /// The repository's HTTPS URL, without credentials, e.g.
    /// `https://git.example.com/platform/payments-backups.git`.
    #[schemars(length(min = 9, max = 2048), regex(pattern = "^https://"))]
    pub url: String,
    /// The Secret (in this namespace) with the keys `username` and `password` (a token that
    /// may push). It is mounted into the backup Job only; the operator never reads it.
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: String,
    /// The branch. Default `backups/<namespace>/<name>`: one branch a service.
    #[schemars(length(min = 1, max = 200))]
    pub branch: Option<String>,
}

fn default_schedule() -> String {
    "0 2 * * *".into()
}

/// Lifecycle phase.
#[operator_core::schema(Copy, Eq)]
pub enum Phase {
    /// Created; the first version is not available yet.
    Pending,
    /// A new version is rolling out.
    Progressing,
    /// The current version is available.
    Running,
    /// A rollout failed and was rolled back, or fewer replicas than wanted are available.
    Degraded,
    /// The spec cannot be realised, or the first version never became available.
    Failed,
}

/// The two colours of a blue-green service.
#[operator_core::schema(Copy, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    #[default]
    Blue,
    Green,
}

impl Color {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blue => "blue",
            Self::Green => "green",
        }
    }

    pub fn other(self) -> Self {
        match self {
            Self::Blue => Self::Green,
            Self::Green => Self::Blue,
        }
    }
}

/// What a rollout moves: the version and its image.
#[operator_core::schema(Eq)]
pub struct Revision {
    pub version: String,
    pub image: String,
}

impl Revision {
    pub fn of(spec: &PaymentServiceSpec) -> Self {
        Self {
            version: spec.version.clone(),
            image: spec.image.clone(),
        }
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.version, self.image)
    }
}

/// A rollout in progress.
#[operator_core::schema]
pub struct Rollout {
    /// The version being rolled out.
    pub target: Revision,
    /// The strategy it is rolled out with.
    pub strategy: StrategyType,
    /// When it started.
    pub started_at: Time,
    /// Canary: the step in progress (0-based); equal to the number of steps while the stable
    /// Deployment is being promoted.
    pub step: Option<i32>,
    /// Canary: when the current step started.
    pub step_started_at: Option<Time>,
    /// Canary: how each analysis metric has measured in the current step.
    pub analysis: Option<Vec<MetricAnalysis>>,
}

/// One analysis metric's measurements in the current canary step.
#[operator_core::schema(Eq, Default)]
pub struct MetricAnalysis {
    /// The metric's name.
    pub name: String,
    /// Measurements that met the success condition.
    pub successful: i32,
    /// Measurements that did not.
    pub failed: i32,
    /// Measurements that could not be judged (Prometheus unreachable, no series).
    pub inconclusive: i32,
    /// How the last measurement went: `Successful`, `Failed` or `Inconclusive`.
    pub phase: String,
    /// The last value measured.
    pub value: Option<String>,
    /// What the last measurement found, in words.
    pub message: Option<String>,
    /// When it was last measured.
    pub measured_at: Option<Time>,
}

/// A rollout that failed and was rolled back.
#[operator_core::schema]
pub struct FailedRollout {
    /// The version that failed; it is not tried again until the spec changes.
    pub target: Revision,
    /// The spec generation that asked for it.
    pub generation: i64,
    /// Why it failed.
    pub message: String,
    /// When it was rolled back.
    pub at: Time,
}

/// Observed state, written by the operator.
#[operator_core::resource_status(phase = Phase, conditions = "Ready, Progressing, Degraded, and ServiceMonitor when monitoring is on.")]
pub struct PaymentServiceStatus {
    /// Pods of the serving version that are available.
    pub available_replicas: Option<i32>,
    /// The version that is fully available and serving (moves only when a rollout completes).
    pub current_version: Option<String>,
    /// The image of `currentVersion`: what a failed rollout rolls back to.
    pub current_image: Option<String>,
    /// When the last backup succeeded.
    pub last_backup: Option<Time>,
    /// The rollout in progress, if any.
    pub rollout: Option<Rollout>,
    /// The last rollout that failed and was rolled back.
    pub failed_rollout: Option<FailedRollout>,
    /// BlueGreen: the colour the Service sends traffic to.
    pub active_color: Option<Color>,
    /// Set when the service is being deleted: what the cleanup did.
    pub cleanup: Option<CleanupReport>,
}

/// What deleting the service did, written to status (and the operator's log) before the
/// finalizer goes.
#[operator_core::schema]
pub struct CleanupReport {
    /// The Deployments stopped and deleted.
    #[serde(default)]
    pub deleted_deployments: Vec<String>,
    /// The PersistentVolumeClaim kept with the backups, to delete by hand when no longer needed.
    pub kept_backup_claim: Option<String>,
    /// When the cleanup finished.
    pub completed_at: Time,
}

impl PaymentServiceStatus {
    /// The version serving traffic, once one has been available.
    pub fn stable(&self) -> Option<Revision> {
        Some(Revision {
            version: self.current_version.clone()?,
            image: self.current_image.clone()?,
        })
    }
}

impl PaymentServiceSpec {
    pub fn strategy(&self) -> StrategyType {
        self.deployment_strategy
            .as_ref()
            .map_or(StrategyType::default(), DeploymentStrategy::type_)
    }

    /// How long one canary step may take to become available.
    pub fn canary_step_deadline_seconds(&self) -> i32 {
        self.deployment_strategy
            .as_ref()
            .and_then(|s| s.canary.as_ref())
            .and_then(|c| c.analysis.as_ref())
            .and_then(|a| a.step_deadline_seconds)
            .unwrap_or_else(|| self.progress_deadline_seconds())
    }

    /// How many pods a rolling update of the Deployment may add at once.
    pub fn max_surge(&self) -> k8s_openapi::apimachinery::pkg::util::intstr::IntOrString {
        self.deployment_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.max_surge.clone())
            .unwrap_or_else(|| {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("25%".into())
            })
    }

    /// The blue-green settings, when the strategy is blue-green.
    pub fn blue_green(&self) -> Option<&BlueGreen> {
        self.deployment_strategy
            .as_ref()
            .and_then(|s| s.blue_green.as_ref())
    }

    pub fn progress_deadline_seconds(&self) -> i32 {
        self.deployment_strategy
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(600)
    }

    /// The canary's analysis metrics (none unless the strategy is a canary with metrics).
    pub fn analysis_metrics(&self) -> &[AnalysisMetric] {
        self.deployment_strategy
            .as_ref()
            .and_then(|s| s.canary.as_ref())
            .and_then(|c| c.analysis.as_ref())
            .and_then(|a| a.metrics.as_deref())
            .unwrap_or_default()
    }

    pub fn canary_steps(&self) -> &[CanaryStep] {
        self.deployment_strategy
            .as_ref()
            .and_then(|s| s.canary.as_ref())
            .map_or(&[], |c| c.steps.as_slice())
    }

    /// The autoscaling settings when autoscaling is on.
    pub fn autoscaling(&self) -> Option<&Autoscaling> {
        self.autoscaling.as_ref().filter(|a| a.enabled)
    }

    /// Fewest replicas the service runs: the autoscaler's floor, or `replicas`.
    pub fn min_replicas(&self) -> i32 {
        match self.autoscaling() {
            // Seed 000 scales "manually" with `replicas` while autoscaling: a floor.
            Some(a) => {
                let floor = a.min_replicas.unwrap_or(1).max(self.replicas);
                floor.min(a.max_replicas).max(1)
            }
            None => self.replicas,
        }
    }

    pub fn prometheus(&self) -> Option<&Prometheus> {
        self.monitoring
            .as_ref()
            .and_then(|m| m.prometheus.as_ref())
            .filter(|p| p.enabled)
    }

    pub fn tracing(&self) -> Option<&Tracing> {
        self.monitoring
            .as_ref()
            .and_then(|m| m.tracing.as_ref())
            .filter(|t| t.enabled)
    }

    pub fn tls_secret(&self) -> Option<&str> {
        self.security
            .as_ref()
            .and_then(|s| s.tls.as_ref())
            .filter(|t| t.enabled)
            .and_then(|t| t.secret_name.as_deref())
    }

    pub fn mtls(&self) -> bool {
        self.security
            .as_ref()
            .and_then(|s| s.mtls.as_ref())
            .is_some_and(|m| m.enabled)
    }

    /// The pods' dedicated service account, when rbac is on.
    pub fn service_account(&self, name: &str) -> Option<String> {
        self.security
            .as_ref()
            .and_then(|s| s.rbac.as_ref())
            .filter(|r| r.enabled)
            .map(|r| {
                r.service_account_name
                    .clone()
                    .unwrap_or_else(|| name.to_string())
            })
    }

    pub fn backup(&self) -> Option<&Backup> {
        self.backup.as_ref().filter(|b| b.enabled)
    }
}
