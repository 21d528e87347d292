//! `BatchProcessor` (`batchprocessors.payments.io/v1`): seed 000's CRD field by field, plus
//! what a payments batch needs that the seed leaves out — `suspend`, `timeZone`,
//! `concurrencyPolicy` (Forbid by default: two runs of one batch never overlap),
//! `activeDeadlineSeconds`, `failedPaymentsThreshold` and `deadLetter` — and the status the
//! seed shows, with the active run, conditions and `observedGeneration`.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A payment batch the operator runs on a schedule, retries, and reports on.
#[operator_core::custom_resource(
    api = "payments.io/v1",
    kind = "BatchProcessor",
    shortname = "bp",
    doc = "A payment batch run on a schedule as an Indexed Job, retried as a whole when it fails, its counts reported in status.",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Suspend", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(
        name = "Last Run",
        type_ = "date",
        json_path = ".status.lastRun.startTime"
    ),
    printcolumn(
        name = "Last Status",
        type_ = "string",
        json_path = ".status.lastRun.status"
    ),
    printcolumn(
        name = "Processed",
        type_ = "integer",
        json_path = ".status.lastRun.paymentsProcessed"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.lastRun.paymentsFailed"
    ),
    validation = fixed_while_a_run_is_active("input"),
    validation = fixed_while_a_run_is_active("output")
)]
pub struct BatchProcessorSpec {
    /// When the batch runs: a five-field cron schedule (`0 2 * * *`: 2 AM daily) or a macro
    /// such as `@daily`, in `timeZone`.
    #[schemars(length(min = 1, max = 100), regex(pattern = operator_core::validation::CRON_PATTERN))]
    pub schedule: String,
    /// The batch image; it follows the contract in docs/batch-processor.md (settings as env,
    /// counts as its termination message).
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Payments per batch, passed as `BATCH_SIZE`.
    #[serde(default = "operator_core::defaults::int::<1000>")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub batch_size: i32,
    /// Workers of one run (an Indexed Job of this many completions, all at once); each reads
    /// its shard from `JOB_COMPLETION_INDEX`.
    #[serde(default = "operator_core::defaults::int::<1>")]
    #[schemars(range(min = 1, max = 100))]
    pub parallelism: i32,
    /// Where the payments come from.
    pub input: Location,
    /// Where the processed payments go.
    pub output: Location,
    /// Resources of each worker; the operator's `defaultResources` when not set.
    pub resources: Option<ResourceRequirements>,
    /// Retries: of pods inside one attempt (`backoffLimit`), and of the whole run
    /// (`maxAttempts`).
    #[serde(default)]
    pub retry: Retry,
    /// Metrics and alerting.
    pub monitoring: Option<Monitoring>,
    /// Finished successful Jobs kept (scheduled runs, retries and run-now Jobs alike).
    #[serde(default = "operator_core::defaults::int::<3>")]
    #[schemars(range(min = 0, max = 100))]
    pub successful_jobs_history_limit: i32,
    /// Finished failed Jobs kept, for their logs.
    #[serde(default = "operator_core::defaults::int::<10>")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_jobs_history_limit: i32,
    /// Starts no new scheduled run or retry; a run in progress finishes.
    #[serde(default)]
    pub suspend: bool,
    /// IANA time zone of `schedule` (`Europe/London`); the controller-manager's zone if not set.
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,
    /// What a scheduled run does when the previous one still runs: `Forbid` skips it (the
    /// default: two runs of one payment batch never overlap), `Replace` stops the old one.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// Seconds an attempt may run before it is stopped and counted as failed.
    #[schemars(range(min = 60, max = 604_800))]
    pub active_deadline_seconds: Option<i64>,
    /// A run whose failed payments exceed this is Failed even if every worker exited 0: a count
    /// (`50`) or a percentage of the payments processed (`"1%"`, the default).
    pub failed_payments_threshold: Option<IntOrString>,
    /// Where the batch writes the payments it could not process.
    pub dead_letter: Option<BlobConfig>,
}

/// Where runs read (`input`) or write (`output`) cannot change type while a run is active,
/// because that run's files would be left half-processed in the old location with nothing
/// to finish them; it can once the run has ended. A rule of the API server's (it reads the
/// stored status), so it holds with the webhook down.
fn fixed_while_a_run_is_active(location: &str) -> kube::core::Rule {
    let (was, is) = (
        format!("oldSelf.spec.{location}.type"),
        format!("self.spec.{location}.type"),
    );
    kube::core::Rule::new(format!(
        "!has(oldSelf.status) || !has(oldSelf.status.activeRun) || {is} == {was}"
    ))
    .field_path(format!(".spec.{location}.type"))
    .reason(kube::core::Reason::FieldValueForbidden)
    .message(kube::core::Message::Expression(format!(
        "'cannot change from %s to %s while run %s is active; wait for it to finish (or suspend the processor and let it end) and apply the change again'.format([{was}, {is}, oldSelf.status.activeRun.job])"
    )))
}

/// A source or destination of payments: a type and that type's block, and no other.
#[operator_core::schema]
#[x_kube(validation = Rule::new("self.type == 'sftp' ? has(self.sftpConfig) && !has(self.blobConfig) : has(self.blobConfig) && !has(self.sftpConfig)").message("type sftp takes sftpConfig only, type azureblob takes blobConfig only"))]
pub struct Location {
    #[serde(rename = "type")]
    pub type_: LocationType,
    pub sftp_config: Option<SftpConfig>,
    pub blob_config: Option<BlobConfig>,
}

/// The kinds of place payments are read from or written to.
#[operator_core::schema(Copy, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LocationType {
    Sftp,
    Azureblob,
}

impl LocationType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sftp => "sftp",
            Self::Azureblob => "azureblob",
        }
    }
}

/// An SFTP server; the credentials are a Secret's keys, mounted read-only.
#[operator_core::schema]
pub struct SftpConfig {
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    #[serde(default = "operator_core::defaults::int::<22>")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// A path or glob (`/incoming/payments/*.csv`).
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// The Secret in the batch's namespace holding the credentials.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// An Azure Blob Storage container; the credentials are a Secret's keys, mounted read-only.
#[operator_core::schema]
pub struct BlobConfig {
    #[schemars(length(min = 3, max = 24))]
    pub storage_account: String,
    #[schemars(length(min = 3, max = 63))]
    pub container: String,
    /// The Secret in the batch's namespace holding the credentials.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// The two retry knobs, side by side: `backoffLimit` retries pods inside one attempt (the
/// Job's own), `maxAttempts` runs a failed run again as a whole (a new Job).
#[operator_core::schema]
pub struct Retry {
    /// How many times a failed run is run again as a whole, each a new Job, waiting
    /// `backoffSeconds`, doubled per attempt (at most 30 minutes), in between.
    #[serde(default = "operator_core::defaults::int::<3>")]
    #[schemars(range(min = 0, max = 10))]
    pub max_attempts: i32,
    /// Failed pods one attempt retries before the attempt fails (the Job's `backoffLimit`).
    #[serde(default = "operator_core::defaults::int::<6>")]
    #[schemars(range(min = 0, max = 20))]
    pub backoff_limit: i32,
    /// Whether a failed worker restarts in its pod (`OnFailure`) or in a new pod (`Never`).
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// Wait before the first retry of a run; each later one waits twice the one before.
    #[serde(default = "operator_core::defaults::int64::<30>")]
    #[schemars(range(min = 1, max = 1800))]
    pub backoff_seconds: i64,
}

operator_core::default_from_fields!(Retry);

#[operator_core::schema(Copy, Default, Eq)]
pub enum RestartPolicy {
    #[default]
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnFailure => "OnFailure",
            Self::Never => "Never",
        }
    }
}

#[operator_core::schema(Copy, Default, Eq)]
pub enum ConcurrencyPolicy {
    #[default]
    Forbid,
    Replace,
}

impl ConcurrencyPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forbid => "Forbid",
            Self::Replace => "Replace",
        }
    }
}

/// Metrics and alerting.
#[operator_core::schema]
pub struct Monitoring {
    /// Export the batch's run metrics.
    #[serde(default = "operator_core::defaults::yes")]
    pub enabled: bool,
    /// Create a PrometheusRule alerting on a failed run and on a run overdue by more than one
    /// schedule period (needs the Prometheus Operator's CRDs).
    #[serde(default)]
    pub alert_on_failure: bool,
    /// Carried on the alerts as label `alert_email`, for Alertmanager to route on; the
    /// operator sends no mail itself.
    #[schemars(length(min = 3, max = 254))]
    pub alert_email: Option<String>,
}

/// How a run ended.
#[operator_core::schema(Copy, Eq)]
pub enum RunStatus {
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

/// The last finished attempt of a run, as the seed's status shows it.
#[operator_core::schema]
pub struct LastRun {
    /// The Job of this attempt.
    pub job: String,
    /// The run it belongs to (the first attempt's Job).
    pub run: String,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub attempt: i32,
    pub start_time: Option<Time>,
    pub completion_time: Option<Time>,
    pub status: RunStatus,
    pub payments_processed: i64,
    pub payments_succeeded: i64,
    pub payments_failed: i64,
    /// Why the run failed, naming the workers whose report was missing or malformed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A run in progress.
#[operator_core::schema]
pub struct ActiveRun {
    /// The Job of the current attempt (a Job name: at most 63 characters).
    #[schemars(length(max = 63))]
    pub job: String,
    pub attempt: i32,
    pub start_time: Option<Time>,
}

/// The next attempt of a failed run, waiting out its backoff.
#[operator_core::schema]
pub struct PendingRetry {
    pub run: String,
    pub attempt: i32,
    /// Not started before this.
    pub not_before: Time,
}

/// Lifecycle phase.
#[operator_core::schema(Copy, Eq)]
pub enum Phase {
    /// Waiting for the next scheduled run.
    Scheduled,
    /// A run is in progress.
    Running,
    /// A failed run waits for its next attempt.
    Retrying,
    /// `spec.suspend`: no new run starts.
    Suspended,
    /// The spec cannot be realised; see the Ready condition.
    Invalid,
}

/// Observed state, written by the operator.
#[operator_core::resource_status(phase = Phase, conditions = "Ready, and LastRunSucceeded once a run finished.")]
pub struct BatchProcessorStatus {
    /// When the CronJob last started a scheduled run.
    pub last_schedule_time: Option<Time>,
    /// When a run last succeeded.
    pub last_successful_time: Option<Time>,
    pub last_run: Option<LastRun>,
    pub active_run: Option<ActiveRun>,
    pub pending_retry: Option<PendingRetry>,
    /// The last `payments.io/run-now` value handled: a run was started for it, or it was
    /// ignored as used before.
    pub last_run_now: Option<String>,
    /// The `payments.io/run-now` values runs were started for, oldest first (the last 32):
    /// none of them starts another run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_now_values: Vec<String>,
}

impl BatchProcessorSpec {
    /// Whether the batch's run metrics are exported (on unless `monitoring.enabled: false`).
    pub fn metrics_enabled(&self) -> bool {
        self.monitoring.as_ref().is_none_or(|m| m.enabled)
    }

    /// The PrometheusRule's settings, when alerting is asked for.
    pub fn alerting(&self) -> Option<&Monitoring> {
        self.monitoring
            .as_ref()
            .filter(|m| m.enabled && m.alert_on_failure)
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use kube::CustomResourceExt;

    /// The sample `daily-payment-batch`, as stored.
    pub fn seed() -> BatchProcessor {
        operator_harness::stored("daily-payment-batch").expect("the sample parses")
    }

    #[test]
    fn the_seed_example_parses_with_its_values() {
        let bp = seed();
        assert_eq!(bp.spec.schedule, "0 2 * * *");
        assert_eq!(bp.spec.batch_size, 10000);
        assert_eq!(bp.spec.parallelism, 10);
        assert_eq!(bp.spec.retry.max_attempts, 3);
        assert_eq!(bp.spec.retry.backoff_limit, 5);
        assert_eq!(bp.spec.concurrency_policy, ConcurrencyPolicy::Forbid);
        assert_eq!(bp.spec.successful_jobs_history_limit, 3);
        assert_eq!(bp.spec.failed_jobs_history_limit, 10);
        assert_eq!(bp.spec.input.sftp_config.as_ref().map(|s| s.port), Some(22));
    }

    #[test]
    fn the_crd_has_the_issues_columns_and_short_name() {
        let crd = serde_json::to_value(BatchProcessor::crd()).unwrap_or_default();
        assert_eq!(crd["spec"]["names"]["shortNames"][0], "bp");
        let columns = operator_harness::printer_columns(&crd);
        assert_eq!(
            columns,
            [
                "Schedule",
                "Suspend",
                "Last Run",
                "Last Status",
                "Processed",
                "Failed",
                "Age"
            ]
        );
    }
}
