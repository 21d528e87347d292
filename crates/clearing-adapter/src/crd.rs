//! `ClearingAdapter` (`clearingadapters.payments.io/v1`): seed 001's `PaymentProcessor` under
//! the product's name, its fields, defaults and status kept, with credentials only by Secret
//! reference, the partner health the operator checks, and the seed's `scale` subresource.

use operator_core::validation::DNS_LABEL_PATTERN;
use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::MetricSpec;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use operator_core::duration::GoDuration;

/// A clearing adapter: the process that carries payments to banking partners, with its
/// partner routing table, health checks and automatic drain.
#[operator_core::custom_resource(
    api = "payments.io/v1",
    kind = "ClearingAdapter",
    shortname = "ca",
    doc = "A clearing adapter connecting the payments engine to its banking partners: routing table, health checks, automatic drain of failing partners, graceful shutdown.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.processorType"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "Partners Healthy",
        type_ = "string",
        json_path = ".status.partnersHealthy"
    )
)]
pub struct ClearingAdapterSpec {
    /// Adapter pods (when `autoscaling` is set, the autoscaler's floor unless it names one).
    #[serde(default = "operator_core::defaults::int::<3>")]
    #[schemars(range(min = 1, max = 100))]
    pub replicas: i32,
    /// The payment rail this adapter clears.
    pub processor_type: ProcessorType,
    /// Partners, timeouts, retries, rate limit and encryption: what the adapter reads from
    /// its `<name>-config` ConfigMap.
    pub config: AdapterConfig,
    /// Resources of the adapter container; a memory request is required.
    #[serde(default)]
    pub resources: ResourceRequirements,
    /// The identity the pods run as, within the restricted Pod Security Standard.
    pub security_context: Option<AdapterSecurityContext>,
    /// A HorizontalPodAutoscaler on CPU and business metrics.
    pub autoscaling: Option<Autoscaling>,
    /// When a partner is drained and restored (and the adapter's own circuit breaker).
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
    /// Metrics port, health path and scraping.
    #[serde(default)]
    pub monitoring: Monitoring,
    /// How long deletion waits for the pods to finish in-flight payments (Go duration).
    #[serde(default = "operator_core::defaults::seconds::<DRAIN_TIMEOUT_SECONDS>")]
    pub drain_timeout: GoDuration,
}

/// `drainTimeout` when the spec leaves it out (seed 001: 30 s).
pub const DRAIN_TIMEOUT_SECONDS: u32 = 30;

/// The seed's processor types.
#[operator_core::schema(Copy, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProcessorType {
    Card,
    Upi,
    Netbanking,
    Wallet,
}

impl ProcessorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Upi => "upi",
            Self::Netbanking => "netbanking",
            Self::Wallet => "wallet",
        }
    }
}

/// The adapter's configuration (seed 001's `PaymentProcessorConfig`).
#[operator_core::schema]
#[x_kube(validation = Rule::new("self.bankingPartners.all(p, self.bankingPartners.exists_one(q, q.name == p.name))").message("bankingPartners: each partner name must be unique"))]
pub struct AdapterConfig {
    /// The partners payments are routed to, by weight.
    #[schemars(length(min = 1, max = 32))]
    pub banking_partners: Vec<BankingPartner>,
    /// Timeout of one request to a partner (Go duration).
    #[serde(default = "operator_core::defaults::seconds::<30>")]
    pub timeout: GoDuration,
    /// How often the operator checks each partner's health endpoint, at most (Go duration).
    #[serde(default = "operator_core::defaults::seconds::<30>")]
    pub health_check_interval: GoDuration,
    pub retry_config: Option<RetryConfig>,
    pub rate_limit: Option<RateLimit>,
    pub encryption: Option<Encryption>,
}

/// One banking partner or clearing network.
#[operator_core::schema]
pub struct BankingPartner {
    /// Unique within the adapter; a DNS label (it names the partner's files).
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub name: String,
    /// The partner's base URL; https only.
    #[schemars(length(min = 9, max = 2048), regex(pattern = r"^https://[^\s/?#]+"))]
    pub endpoint: String,
    /// Share of the traffic, relative to the other partners; 0 keeps a partner on standby.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000))]
    pub weight: i32,
    /// Extra request headers. Credentials never go here: a header named like one
    /// (`Authorization`, `*-Key`, `*-Token`, `*Secret*`) is refused; use `auth`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Path of the partner's health endpoint, under `endpoint`.
    #[serde(default = "default_partner_health_path")]
    #[schemars(length(min = 1, max = 512), regex(pattern = r"^/\S*$"))]
    pub health_check_path: String,
    /// The CA that signs the partner's certificate, and the adapter's client certificate.
    pub tls: Option<PartnerTls>,
    /// The partner's API credential.
    pub auth: Option<PartnerAuth>,
}

fn default_partner_health_path() -> String {
    "/health".into()
}

/// A key of a Secret in the adapter's namespace.
#[operator_core::schema(Eq, PartialOrd, Ord)]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// TLS towards a partner.
#[operator_core::schema]
pub struct PartnerTls {
    /// The CA bundle (PEM) that signs the partner's server certificate; the system roots
    /// when not set.
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// A `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`): the adapter's client certificate
    /// for mutual TLS.
    #[schemars(length(min = 1, max = 253))]
    pub client_certificate_secret_name: Option<String>,
}

/// How the adapter authenticates to a partner.
#[operator_core::schema]
pub struct PartnerAuth {
    #[serde(rename = "type")]
    pub type_: AuthType,
    /// The credential (token, API key, or `user:password` for Basic).
    pub secret_ref: SecretKeyRef,
    /// The header an `ApiKey` goes in.
    #[schemars(length(min = 1, max = 128))]
    pub header: Option<String>,
}

#[operator_core::schema(Copy, Eq)]
pub enum AuthType {
    Bearer,
    Basic,
    ApiKey,
}

/// Retries of a failed partner request, with exponential backoff.
#[operator_core::schema]
pub struct RetryConfig {
    #[serde(default = "operator_core::defaults::int::<3>")]
    #[schemars(range(min = 0, max = 10))]
    pub max_retries: i32,
    #[serde(default = "operator_core::defaults::millis::<100>")]
    pub initial_backoff: GoDuration,
    #[serde(default = "operator_core::defaults::seconds::<5>")]
    pub max_backoff: GoDuration,
}

/// Requests the adapter sends to partners, at most.
#[operator_core::schema]
#[x_kube(validation = Rule::new("self.burstSize >= self.requestsPerSecond").message("rateLimit.burstSize must be at least requestsPerSecond"))]
pub struct RateLimit {
    #[schemars(range(min = 1, max = 100_000))]
    pub requests_per_second: i32,
    #[schemars(range(min = 1, max = 1_000_000))]
    pub burst_size: i32,
}

/// Payload encryption with a key held in a Secret.
#[operator_core::schema]
pub struct Encryption {
    pub key_secret_ref: SecretKeyRef,
    #[serde(default)]
    pub algorithm: EncryptionAlgorithm,
}

#[operator_core::schema(Copy, Default, Eq)]
pub enum EncryptionAlgorithm {
    #[default]
    #[serde(rename = "AES-256-GCM")]
    Aes256Gcm,
    #[serde(rename = "ChaCha20-Poly1305")]
    ChaCha20Poly1305,
}

/// The pods' user and groups; the rest of the restricted profile is fixed.
#[operator_core::schema]
pub struct AdapterSecurityContext {
    #[schemars(range(min = 1, max = 2_147_483_647))]
    pub run_as_user: Option<i64>,
    #[schemars(range(min = 1, max = 2_147_483_647))]
    pub run_as_group: Option<i64>,
    #[schemars(range(min = 1, max = 2_147_483_647))]
    pub fs_group: Option<i64>,
}

/// Seed 001's business-metric scaling, as a HorizontalPodAutoscaler: its policies become
/// `metrics` (External or Pods, e.g. pending clearing requests per pod), its cooldown the
/// scale-down stabilization window.
#[operator_core::schema]
#[x_kube(validation = Rule::new("!has(self.minReplicas) || self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed maxReplicas"))]
pub struct Autoscaling {
    /// The floor; `spec.replicas` when not set.
    #[schemars(range(min = 1, max = 100))]
    pub min_replicas: Option<i32>,
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    #[serde(default, rename = "targetCPUUtilizationPercentage")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// Business metrics, as HPA `External` or `Pods` metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub metrics: Vec<MetricSpec>,
    /// The seed's cooldown: how long the load must stay low before the autoscaler removes
    /// pods (scale-down stabilization window, Go duration).
    #[serde(default = "operator_core::defaults::minutes::<5>")]
    pub cooldown_period: GoDuration,
}

/// Seed 001's `CircuitBreakerConfig` and defaults.
#[operator_core::schema]
pub struct CircuitBreaker {
    /// Failed health checks in a row that drain a partner.
    #[serde(default = "operator_core::defaults::int::<5>")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_threshold: i32,
    /// Good health checks in a row that restore a drained partner.
    #[serde(default = "operator_core::defaults::int::<3>")]
    #[schemars(range(min = 1, max = 100))]
    pub success_threshold: i32,
    /// How long the adapter's own breaker stays open before it tries a partner again.
    #[serde(default = "operator_core::defaults::seconds::<60>")]
    pub timeout: GoDuration,
}

operator_core::default_from_fields!(CircuitBreaker);

/// Seed 001's `MonitoringConfig` and defaults.
#[operator_core::schema]
pub struct Monitoring {
    /// A ServiceMonitor scrapes the adapter (where the Prometheus Operator is installed).
    #[serde(default = "operator_core::defaults::yes")]
    pub enabled: bool,
    /// The port the adapter serves `/metrics` on.
    #[serde(default = "operator_core::defaults::int::<8080>")]
    #[schemars(range(min = 1024, max = 65535))]
    pub metrics_port: i32,
    /// The base of the adapter's probes: `<path>/live` and `<path>/ready`.
    #[serde(default = "default_health_path")]
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^/\S*$"))]
    pub health_check_path: String,
    /// Seed 001's threshold: below this share of successful payments over `metricsWindow`
    /// (from the adapter's own `payment_processor_transactions_total`, read from the
    /// operator's Prometheus), the adapter is `Failed` with reason `LowSuccessRate`.
    #[serde(default = "default_min_success_rate")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_success_rate: f64,
    /// The window `status.metrics`' success rate and average response time are computed
    /// over (Go duration). They are read again every 30 s, or every window when it is shorter.
    #[serde(default = "operator_core::defaults::minutes::<5>")]
    pub metrics_window: GoDuration,
}

fn default_health_path() -> String {
    "/health".into()
}

fn default_min_success_rate() -> f64 {
    0.95
}

operator_core::default_from_fields!(Monitoring);

/// The seed's phases.
#[operator_core::schema(Copy, Eq)]
pub enum Phase {
    /// No adapter pod is ready yet.
    Pending,
    /// Pods serve payments.
    Running,
    /// The spec cannot be realised, or no pod becomes ready; see the Ready condition.
    Failed,
    /// Deletion drained the adapter: its pods have stopped (seen until the finalizer goes).
    Succeeded,
}

/// What the operator last saw of one partner.
#[operator_core::schema]
pub struct BankingPartnerStatus {
    pub name: String,
    /// The last health check succeeded (absent before the first check, or with checks off).
    pub healthy: Option<bool>,
    /// Taken out of the routing table after `failureThreshold` failed checks in a row.
    #[serde(default)]
    pub drained: bool,
    /// Taken out of the routing table by a person (annotation `payments.io/drain-partners`),
    /// whatever its checks say, until it is taken off the annotation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drained_by_hand: bool,
    /// The weight the routing table gives it now (0 while drained, by its checks or by hand).
    pub effective_weight: i32,
    pub last_checked: Option<Time>,
    #[serde(default)]
    pub consecutive_failures: i32,
    #[serde(default)]
    pub consecutive_successes: i32,
    /// The last check's outcome, in words.
    #[serde(default)]
    pub message: String,
}

/// Observed state, written by the operator.
#[operator_core::resource_status(phase = Phase, conditions = "Ready, Available, BankingPartnersHealthy.")]
pub struct ClearingAdapterStatus {
    /// Adapter pods that exist (the `scale` subresource's status).
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// The pods' label selector, for the `scale` subresource (`kubectl scale`, an HPA).
    pub selector: Option<String>,
    pub last_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub banking_partner_status: Vec<BankingPartnerStatus>,
    /// Partners passing their health check, of all (`2/3`).
    pub partners_healthy: Option<String>,
    /// Seed 001's business metrics, as the operator last read them from Prometheus.
    pub metrics: Option<ProcessorMetrics>,
}

/// What the adapter's pods report of the payments they carry (seed 001's `ProcessorMetrics`).
#[operator_core::schema]
pub struct ProcessorMetrics {
    /// Payments finished since the pods started counting (every status).
    pub total_transactions: i64,
    /// Of them, those with `status="success"`.
    pub successful_transactions: i64,
    pub failed_transactions: i64,
    /// Mean time to clear one payment over `metricsWindow` (`120ms`); absent without traffic
    /// or without the duration histogram.
    pub average_response_time: Option<String>,
    /// Successful payments of all over `metricsWindow`, to four decimals; absent without
    /// traffic in the window.
    pub success_rate: Option<f64>,
    /// When the operator read these figures.
    pub last_read: Option<Time>,
}

/// A Secret key the spec references, with the field that names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretUse {
    pub field: String,
    pub secret: SecretKeyRef,
}

impl ClearingAdapterSpec {
    /// Every Secret key the adapter's pods mount (and the operator's checks read), in spec
    /// order; a client certificate Secret counts as its `tls.crt` and `tls.key`.
    pub fn secret_uses(&self) -> Vec<SecretUse> {
        let mut uses = Vec::new();
        let mut add = |field: String, name: &str, key: &str| {
            uses.push(SecretUse {
                field,
                secret: SecretKeyRef {
                    name: name.into(),
                    key: key.into(),
                },
            });
        };
        for (i, p) in self.config.banking_partners.iter().enumerate() {
            let field = |f: &str| format!("spec.config.bankingPartners[{i}].{f}");
            if let Some(tls) = &p.tls {
                if let Some(ca) = &tls.ca_secret_ref {
                    add(field("tls.caSecretRef"), &ca.name, &ca.key);
                }
                if let Some(cert) = &tls.client_certificate_secret_name {
                    for key in ["tls.crt", "tls.key"] {
                        add(field("tls.clientCertificateSecretName"), cert, key);
                    }
                }
            }
            if let Some(auth) = &p.auth {
                add(
                    field("auth.secretRef"),
                    &auth.secret_ref.name,
                    &auth.secret_ref.key,
                );
            }
        }
        if let Some(e) = &self.config.encryption {
            add(
                "spec.config.encryption.keySecretRef".into(),
                &e.key_secret_ref.name,
                &e.key_secret_ref.key,
            );
        }
        uses
    }

    /// The autoscaler's floor.
    pub fn min_replicas(&self) -> i32 {
        self.autoscaling
            .as_ref()
            .and_then(|a| a.min_replicas)
            .unwrap_or(self.replicas)
    }
}

impl ClearingAdapter {
    /// Each partner's state as the status last recorded it (none before the first pass).
    pub fn recorded_partners(&self) -> Vec<BankingPartnerStatus> {
        self.status
            .as_ref()
            .map(|s| s.banking_partner_status.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use kube::CustomResourceExt;

    /// The sample `card-clearing`, as stored.
    pub fn sample() -> ClearingAdapter {
        operator_harness::stored("card-clearing").expect("the sample parses")
    }

    fn crd() -> serde_json::Value {
        serde_json::to_value(ClearingAdapter::crd()).unwrap_or_default()
    }

    #[test]
    fn a_minimal_adapter_gets_the_seeds_defaults() {
        let ca: ClearingAdapter = serde_json::from_value(serde_json::json!({
            "apiVersion": "payments.io/v1", "kind": "ClearingAdapter",
            "metadata": {"name": "min"},
            "spec": {"processorType": "upi", "config": {"bankingPartners": [
                {"name": "a", "endpoint": "https://a.example", "weight": 1}
            ]}}
        }))
        .expect("a minimal adapter parses");
        let spec = ca.spec;
        assert_eq!(spec.replicas, 3);
        assert_eq!(spec.config.timeout, "30s");
        assert_eq!(spec.circuit_breaker, CircuitBreaker::default());
        assert_eq!(
            (
                spec.circuit_breaker.failure_threshold,
                spec.circuit_breaker.success_threshold
            ),
            (5, 3)
        );
        assert_eq!(spec.circuit_breaker.timeout, "60s");
        assert_eq!(spec.monitoring, Monitoring::default());
        assert!(spec.monitoring.enabled);
        assert_eq!(spec.monitoring.metrics_port, 8080);
        assert_eq!(spec.monitoring.health_check_path, "/health");
        assert_eq!(spec.drain_timeout, "30s");
        assert_eq!(spec.config.banking_partners[0].health_check_path, "/health");
    }

    /// The API server applies the same defaults (a user reading the object back sees them).
    #[test]
    fn the_schema_carries_the_seeds_defaults_and_bounds() {
        let schema =
            &crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let props = &schema["properties"];
        assert_eq!(props["replicas"]["default"], 3);
        assert_eq!(props["replicas"]["minimum"].as_f64(), Some(1.0));
        assert_eq!(props["replicas"]["maximum"].as_f64(), Some(100.0));
        assert_eq!(props["config"]["properties"]["timeout"]["default"], "30s");
        assert_eq!(
            props["config"]["properties"]["timeout"]["pattern"],
            operator_core::duration::GO_DURATION_PATTERN
        );
        assert_eq!(props["circuitBreaker"]["default"]["failureThreshold"], 5);
        assert_eq!(props["monitoring"]["default"]["metricsPort"], 8080);
        let types: Vec<&str> = props["processorType"]["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(types, ["card", "upi", "netbanking", "wallet"]);
    }

    #[test]
    fn the_crd_has_the_scale_subresource_columns_and_short_name() {
        let crd = crd();
        assert_eq!(crd["spec"]["names"]["shortNames"][0], "ca");
        let version = &crd["spec"]["versions"][0];
        let scale = &version["subresources"]["scale"];
        assert_eq!(scale["specReplicasPath"], ".spec.replicas");
        assert_eq!(scale["statusReplicasPath"], ".status.replicas");
        assert_eq!(scale["labelSelectorPath"], ".status.selector");
        let columns = operator_harness::printer_columns(&crd);
        assert_eq!(
            columns,
            [
                "Type",
                "Phase",
                "Replicas",
                "Ready",
                "Partners Healthy",
                "Age"
            ]
        );
    }

    #[test]
    fn the_sample_parses_with_its_two_partners() {
        let spec = sample().spec;
        assert_eq!(spec.processor_type, ProcessorType::Card);
        let names: Vec<&str> = spec
            .config
            .banking_partners
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["acme-bank", "globex-clearing"]);
        assert_eq!(
            spec.config.banking_partners[1]
                .auth
                .as_ref()
                .map(|a| a.type_),
            Some(AuthType::ApiKey)
        );
    }
}
