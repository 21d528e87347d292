//! An operator binary's configuration: flags (seed 000's operator Deployment), the optional
//! `--config` YAML file (seed 002's `trading-operator-config` is the model) and the pod's
//! environment. Flags beat the file, the file beats defaults; anything invalid is an error
//! that names the flag or field.
//!
//! An operator's section of the file holds the [`WorkloadDefaults`] every operator reads and
//! the operator's own fields, in a type it declares ([`OperatorSettings`]); both are read and
//! checked when the binary starts, before it connects.

use crate::builder::WorkloadDefaults;
use std::any::Any;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::OperatorBinary;
use crate::controller::ControllerSettings;

/// The flags every operator binary takes.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Parser)]
#[command(version)]
pub struct Flags {
    /// Elect a leader through a coordination.k8s.io/v1 Lease; only the leader reconciles.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: Option<bool>,
    /// Address of /healthz and /readyz ([host]:port, or 0 to disable). Default :8081 in a
    /// cluster; out of one, a free port on 127.0.0.1 (logged), so several operators run side
    /// by side on a workstation.
    #[arg(long)]
    pub health_probe_bind_address: Option<String>,
    /// Address of /metrics ([host]:port, or 0 to disable). Default :8080 in a cluster; out of
    /// one, the health endpoints' port.
    #[arg(long)]
    pub metrics_bind_address: Option<String>,
    /// Serve /metrics over HTTPS to authenticated, authorized scrapers only (a TokenReview and
    /// a SubjectAccessReview of `get /metrics` per token, kept a minute). Default true in a
    /// cluster, false out of one; `--metrics-secure=false` for local runs in a pod.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub metrics_secure: Option<bool>,
    /// Address of the admission webhooks, served over TLS on every replica ([host]:port, or 0
    /// to disable). Default :9443 in a cluster; off out of one (the API server could not reach
    /// a workstation), unless this flag or the config file's operator.webhook asks for it.
    #[arg(long)]
    pub webhook_bind_address: Option<String>,
    /// Directory holding the webhook's `tls.crt` and `tls.key` (a Secret cert-manager or you
    /// keep, mounted; reloaded when they change). Without it the operator issues and renews
    /// its own certificate in the Secret `<binary>-webhook-certificate` of its namespace.
    #[arg(long)]
    pub webhook_cert_dir: Option<PathBuf>,
    /// YAML configuration file (reconcileInterval, leaderElection, metrics, health, workload defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Log format: json (one object per line) or text.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LeaderElectionSection {
    enabled: Option<bool>,
    id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EndpointSection {
    bind_address: Option<String>,
    enabled: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WebhookSection {
    bind_address: Option<String>,
    enabled: Option<bool>,
    /// Names the operator's own serving certificate carries beside its Service's (an
    /// address the API server calls when the configurations name a URL).
    #[serde(default)]
    hosts: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PrometheusSection {
    url: String,
    bearer_token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    timeout: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OperatorSection {
    name: Option<String>,
    namespace: Option<String>,
    reconcile_interval: Option<String>,
    leader_election: Option<LeaderElectionSection>,
    metrics: Option<EndpointSection>,
    health: Option<EndpointSection>,
    webhook: Option<WebhookSection>,
    prometheus: Option<PrometheusSection>,
}

/// An operator's own fields in its config section, as the type its binary declares
/// ([`OperatorSettings::of`]); [`OwnSettings::get`] hands them back typed.
#[derive(Clone, Default)]
pub struct OwnSettings(Option<Arc<dyn Any + Send + Sync>>);

impl OwnSettings {
    /// The operator's settings, or their defaults when no file was read (tests, tools).
    ///
    /// # Panics
    /// When `S` is not the type the binary's [`OperatorSettings`] declared: a wiring bug that
    /// the operator's first start shows.
    pub fn get<S: Clone + Default + 'static>(&self) -> S {
        match &self.0 {
            None => S::default(),
            Some(any) => any
                .downcast_ref::<S>()
                .cloned()
                .expect("an operator reads its settings as the type its binary declares"),
        }
    }
}

impl std::fmt::Debug for OwnSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "OwnSettings(read)"
        } else {
            "OwnSettings(defaults)"
        })
    }
}

/// The type of an operator's own fields in its config section: their names, so a key that is
/// neither shared nor the operator's is refused by name, and how to read them.
#[derive(Clone, Copy)]
pub struct OperatorSettings {
    fields: fn() -> &'static [&'static str],
    read: fn(serde_yaml::Value) -> Result<OwnSettings, (String, String)>,
}

impl OperatorSettings {
    /// Fields of `S` (a struct with `#[serde(rename_all = "camelCase")]`).
    pub const fn of<S: DeserializeOwned + Send + Sync + 'static>() -> Self {
        Self {
            fields: struct_fields::<S>,
            read: read_own::<S>,
        }
    }

    /// An operator with no fields of its own.
    pub const NONE: Self = Self::of::<NoOwnSettings>();
}

impl std::fmt::Debug for OperatorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries((self.fields)()).finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoOwnSettings {}

fn read_own<S: DeserializeOwned + Send + Sync + 'static>(
    value: serde_yaml::Value,
) -> Result<OwnSettings, (String, String)> {
    serde_path_to_error::deserialize::<_, S>(value)
        .map(|s| OwnSettings(Some(Arc::new(s))))
        .map_err(|e| (e.path().to_string(), e.inner().to_string()))
}

/// The serialized field names of struct `S`, as its `Deserialize` impl declares them.
fn struct_fields<S: DeserializeOwned>() -> &'static [&'static str] {
    match S::deserialize(FieldNames) {
        Err(FieldNamesFound(fields)) => fields,
        Ok(_) => &[],
    }
}

/// A deserializer that only records the fields a struct asks for.
struct FieldNames;

#[derive(Debug)]
struct FieldNamesFound(&'static [&'static str]);

impl std::fmt::Display for FieldNamesFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fields {:?}", self.0)
    }
}

impl std::error::Error for FieldNamesFound {}

impl serde::de::Error for FieldNamesFound {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Self(&[])
    }
}

impl<'de> serde::Deserializer<'de> for FieldNames {
    type Error = FieldNamesFound;

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        Err(FieldNamesFound(fields))
    }

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(FieldNamesFound(&[]))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[derive(Clone, Debug, Default)]
struct FileConfig {
    operator: OperatorSection,
    workloads: WorkloadDefaults,
    own: OwnSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {field}: {message}")]
    File {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("{name}: {message}")]
    Invalid { name: String, message: String },
}

fn invalid(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.into(),
        message: message.into(),
    }
}

/// `:8080` (all interfaces), `127.0.0.1:8080`, or `0` (disabled → `None`).
pub fn parse_bind_address(s: &str) -> Result<Option<SocketAddr>, String> {
    if s == "0" {
        return Ok(None);
    }
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse()
        .map(Some)
        .map_err(|_| format!("invalid address {s:?}: expected [host]:port, or 0 to disable"))
}

fn load_file(
    path: &Path,
    section: &str,
    settings: OperatorSettings,
) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let file_error = |field: String, message: String| ConfigError::File {
        path: path.into(),
        field,
        message,
    };
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| file_error("<document>".into(), e.to_string()))?;
    let mut config = FileConfig::default();
    let Some(sections) = doc.as_mapping() else {
        return Err(file_error("<document>".into(), "must be a mapping".into()));
    };
    for (key, value) in sections {
        let key = key.as_str().unwrap_or_default();
        if key == "operator" {
            config.operator = serde_path_to_error::deserialize(value.clone())
                .map_err(|e| file_error(format!("operator.{}", e.path()), e.inner().to_string()))?;
        } else if key == section {
            (config.workloads, config.own) = read_section(value, settings)
                .map_err(|(field, message)| file_error(format!("{section}.{field}"), message))?;
        } else {
            return Err(file_error(
                key.to_string(),
                format!("unknown section, expected `operator` or `{section}`"),
            ));
        }
    }
    if config.own.0.is_none() {
        // No section: the operator's own fields take their defaults, if it has any.
        config.own = (settings.read)(serde_yaml::Value::Mapping(Default::default()))
            .map_err(|(field, message)| file_error(format!("{section}.{field}"), message))?;
    }
    Ok(config)
}

/// Splits an operator's section into the shared workload defaults and its own fields, and
/// reads each; a key that is neither is refused with the keys allowed.
fn read_section(
    value: &serde_yaml::Value,
    settings: OperatorSettings,
) -> Result<(WorkloadDefaults, OwnSettings), (String, String)> {
    let Some(entries) = value.as_mapping() else {
        return Err((String::new(), "must be a mapping".into()));
    };
    let shared_fields = struct_fields::<WorkloadDefaults>();
    let own_fields = (settings.fields)();
    let mut shared = serde_yaml::Mapping::new();
    let mut own = serde_yaml::Mapping::new();
    for (key, value) in entries {
        let name = key.as_str().unwrap_or_default();
        if shared_fields.contains(&name) {
            shared.insert(key.clone(), value.clone());
        } else if own_fields.contains(&name) {
            own.insert(key.clone(), value.clone());
        } else {
            let allowed: Vec<&str> = shared_fields.iter().chain(own_fields).copied().collect();
            return Err((
                name.to_string(),
                format!("unknown field, expected one of {}", allowed.join(", ")),
            ));
        }
    }
    let workloads = serde_path_to_error::deserialize(serde_yaml::Value::Mapping(shared))
        .map_err(|e| (e.path().to_string(), e.inner().to_string()))?;
    let own = (settings.read)(serde_yaml::Value::Mapping(own))?;
    Ok((workloads, own))
}

/// Leader election on a Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    pub lease_name: String,
    pub namespace: String,
    /// This replica's identity (`POD_NAME`).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// Where the health and metrics endpoints listen out of a cluster: a free loopback port.
const OUT_OF_CLUSTER_ADMIN: &str = "127.0.0.1:0";

/// Where deploy/admission's overlay mounts cert-manager's Secret, as controller-runtime names it.
pub const DEFAULT_WEBHOOK_CERT_DIR: &str = "/tmp/k8s-webhook-server/serving-certs";

/// The admission webhook server's address and where its certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    pub address: SocketAddr,
    pub certificate: WebhookCertificate,
}

/// Where the webhook server's certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookCertificate {
    /// `tls.crt` and `tls.key` in this directory (`--webhook-cert-dir`).
    Files(PathBuf),
    /// Issued and renewed by the operator (the default).
    SelfManaged(crate::admission::SelfManagedCertificates),
}

/// Everything a running operator needs, resolved.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    pub leader_election: Option<LeaderElectionConfig>,
    pub health_address: Option<SocketAddr>,
    pub metrics_address: Option<SocketAddr>,
    /// `/metrics` over HTTPS for reviewed tokens only, on its own listener.
    pub metrics_secure: bool,
    /// Where the admission webhooks listen, and the directory of their certificate.
    pub webhook: Option<WebhookConfig>,
    pub log_format: LogFormat,
    pub controller: ControllerSettings,
    pub workloads: WorkloadDefaults,
    /// Where the operator reads its workloads' metrics (`operator.prometheus`); what it
    /// judges by them is off without it.
    pub prometheus: Option<crate::prometheus::PrometheusSettings>,
    /// The operator's own fields of its section: `own.get::<its settings type>()`.
    pub own: OwnSettings,
    /// The time every reconcile reads: the system clock, or a test's that it moves.
    pub clock: crate::Clock,
}

impl RuntimeConfig {
    /// One process on its own, as tests and tools run it: no leader election, no admin
    /// endpoints, text logs, no workload defaults.
    pub fn standalone(controller: ControllerSettings) -> Self {
        Self {
            leader_election: None,
            health_address: None,
            metrics_address: None,
            metrics_secure: false,
            webhook: None,
            log_format: LogFormat::Text,
            controller,
            workloads: WorkloadDefaults::default(),
            prometheus: None,
            own: OwnSettings::default(),
            clock: crate::Clock::default(),
        }
    }

    /// Resolves flags, the file they name, and the environment (`WATCH_NAMESPACE`,
    /// `POD_NAMESPACE`, `POD_NAME`, read through `env`). The binary's manager names the
    /// default lease (`<manager>-leader`); its section holds its workload defaults and own
    /// settings.
    pub fn resolve(
        flags: &Flags,
        binary: &OperatorBinary,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let manager = binary.identity.manager;
        let file = match &flags.config {
            Some(path) => load_file(path, binary.config_section, binary.settings)?,
            None => FileConfig::default(),
        };
        let op = &file.operator;
        let env = |k: &str| env(k).filter(|v| !v.is_empty());

        let mut controller = ControllerSettings::default();
        if let Some(interval) = &op.reconcile_interval {
            controller.resync = crate::duration::go_duration(interval)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    invalid(
                        "operator.reconcileInterval",
                        format!("invalid duration {interval:?}: expected e.g. 30s, 5m"),
                    )
                })?;
        }
        controller.namespace = env("WATCH_NAMESPACE");
        // Every pod gets KUBERNETES_SERVICE_HOST; a process on a workstation does not.
        let in_cluster = env("KUBERNETES_SERVICE_HOST").is_some();
        let (health_default, metrics_default) = if in_cluster {
            (":8081", ":8080")
        } else {
            (OUT_OF_CLUSTER_ADMIN, OUT_OF_CLUSTER_ADMIN)
        };

        let health_address = bind_address(
            &flags.health_probe_bind_address,
            "--health-probe-bind-address",
            &op.health,
            "health",
            health_default,
        )?;
        let metrics_address = bind_address(
            &flags.metrics_bind_address,
            "--metrics-bind-address",
            &op.metrics,
            "metrics",
            metrics_default,
        )?;
        let metrics_secure = flags.metrics_secure.unwrap_or(in_cluster);
        if metrics_secure
            && metrics_address.is_some_and(|m| m.port() != 0 && Some(m) == health_address)
        {
            return Err(invalid(
                "--metrics-bind-address",
                "with --metrics-secure, /metrics is served over HTTPS on a listener of its own: give it another address than the health endpoints'",
            ));
        }

        let webhook = webhook_config(flags, op, binary, in_cluster, &env)?;

        let leader_election = leader_election_config(flags, op, manager, &env)?;
        let prometheus = match &op.prometheus {
            Some(section) => Some(prometheus_settings(section)?),
            None => None,
        };
        Ok(Self {
            leader_election,
            health_address,
            metrics_address,
            metrics_secure,
            webhook,
            log_format: flags.log_format.unwrap_or_default(),
            controller,
            workloads: file.workloads,
            prometheus,
            own: file.own,
            clock: crate::Clock::default(),
        })
    }
}

/// An endpoint's address: its flag, else its section's `bindAddress` (`None` when the
/// section disables it), else `default`.
fn bind_address(
    flag: &Option<String>,
    flag_name: &str,
    section: &Option<EndpointSection>,
    field: &str,
    default: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    if let Some(value) = flag {
        return parse_bind_address(value).map_err(|m| invalid(flag_name, m));
    }
    let section = section.clone().unwrap_or_default();
    if section.enabled == Some(false) {
        return Ok(None);
    }
    match section.bind_address {
        Some(value) => parse_bind_address(&value)
            .map_err(|m| invalid(&format!("operator.{field}.bindAddress"), m)),
        None => parse_bind_address(default).map_err(|m| invalid(flag_name, m)),
    }
}

/// The admission webhook's listener and certificate: served in a cluster, or wherever the
/// flags or the file ask for it.
fn webhook_config(
    flags: &Flags,
    op: &OperatorSection,
    binary: &OperatorBinary,
    in_cluster: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<WebhookConfig>, ConfigError> {
    let asked_for_webhook = flags.webhook_bind_address.is_some()
        || op
            .webhook
            .as_ref()
            .is_some_and(|w| w.enabled == Some(true) || w.bind_address.is_some());
    let webhook_section = op.webhook.clone().unwrap_or_default();
    let webhook_endpoint = EndpointSection {
        bind_address: webhook_section.bind_address.clone(),
        enabled: webhook_section.enabled,
    };
    let address = bind_address(
        &flags.webhook_bind_address,
        "--webhook-bind-address",
        &Some(webhook_endpoint),
        "webhook",
        ":9443",
    )?
    .filter(|_| in_cluster || asked_for_webhook);
    let Some(address) = address else {
        return Ok(None);
    };
    let certificate = match &flags.webhook_cert_dir {
        Some(dir) => WebhookCertificate::Files(dir.clone()),
        None => {
            let namespace = env("POD_NAMESPACE").or_else(|| op.namespace.clone()).ok_or_else(|| {
                invalid("POD_NAMESPACE", "the webhook's own certificate lives in a Secret of the operator's namespace: set POD_NAMESPACE (from the downward API) or operator.namespace, or pass --webhook-cert-dir")
            })?;
            WebhookCertificate::SelfManaged(crate::admission::SelfManagedCertificates::new(
                binary.identity,
                &namespace,
                &webhook_section.hosts,
            ))
        }
    };
    Ok(Some(WebhookConfig {
        address,
        certificate,
    }))
}

/// The Lease this replica campaigns for, when leader election is on.
fn leader_election_config(
    flags: &Flags,
    op: &OperatorSection,
    manager: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<LeaderElectionConfig>, ConfigError> {
    let election = op.leader_election.clone().unwrap_or_default();
    let elect = flags.leader_elect.or(election.enabled).unwrap_or(false);
    if !elect {
        return Ok(None);
    }
    let namespace = env("POD_NAMESPACE")
        .or_else(|| op.namespace.clone())
        .ok_or_else(|| invalid("POD_NAMESPACE", "leader election needs the namespace of its Lease: set POD_NAMESPACE (from the downward API) or operator.namespace"))?;
    let identity =
        env("POD_NAME").unwrap_or_else(|| format!("{manager}-{:08x}", rand::random::<u32>()));
    Ok(Some(LeaderElectionConfig {
        lease_name: election.id.unwrap_or_else(|| format!("{manager}-leader")),
        namespace,
        identity,
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    }))
}

fn prometheus_settings(
    section: &PrometheusSection,
) -> Result<crate::prometheus::PrometheusSettings, ConfigError> {
    use crate::prometheus::PrometheusSettings;
    let timeout = match &section.timeout {
        None => PrometheusSettings::TIMEOUT,
        Some(text) => crate::duration::go_duration(text)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                invalid(
                    "operator.prometheus.timeout",
                    format!("invalid duration {text:?}: expected e.g. 5s"),
                )
            })?,
    };
    let settings = PrometheusSettings {
        url: section.url.clone(),
        bearer_token_file: section.bearer_token_file.clone(),
        ca_file: section.ca_file.clone(),
        timeout,
    };
    settings
        .check()
        .map_err(|why| invalid("operator.prometheus", why))?;
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OperatorIdentity;
    use clap::Parser;

    const TRADING: OperatorBinary = OperatorBinary {
        identity: OperatorIdentity {
            manager: "trading-operator",
            app_name: "trading-algorithm",
        },
        config_section: "trading",
        settings: OperatorSettings::NONE,
        version: "0",
    };

    const SEED_CONFIG: &str = r#"
operator:
  name: "trading-operator"
  namespace: "trading-platform"
  reconcileInterval: "30s"
  leaderElection:
    enabled: true
    id: "trading-operator-leader"
  metrics:
    bindAddress: ":8080"
    enabled: true
  health:
    bindAddress: ":8081"
    enabled: true
trading:
  defaultImage: "nginx:1.21"
  defaultResources:
    requests: {cpu: "100m", memory: "128Mi"}
    limits: {cpu: "500m", memory: "512Mi"}
  defaultLabels:
    app.kubernetes.io/managed-by: "trading-operator"
"#;

    fn write(name: &str, content: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("operator-core-{name}-{}.yaml", std::process::id()));
        let _ = std::fs::write(&path, content);
        path
    }

    fn flags(args: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("operator").chain(args.iter().copied()))
            .unwrap_or_default()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn in_a_pod(k: &str) -> Option<String> {
        match k {
            "KUBERNETES_SERVICE_HOST" => Some("10.96.0.1".to_string()),
            "POD_NAMESPACE" => Some("trading-platform".to_string()),
            _ => None,
        }
    }

    #[test]
    fn defaults_follow_the_seed_deployment() -> Result<(), ConfigError> {
        let c = RuntimeConfig::resolve(&Flags::default(), &TRADING, in_a_pod)?;
        assert_eq!(c.health_address, "0.0.0.0:8081".parse().ok());
        assert_eq!(c.metrics_address, "0.0.0.0:8080".parse().ok());
        assert_eq!(c.webhook.map(|w| w.address), "0.0.0.0:9443".parse().ok());
        assert_eq!(c.controller.resync, Duration::from_secs(30));
        assert_eq!(c.leader_election, None);
        assert_eq!(c.log_format, LogFormat::Json);
        Ok(())
    }

    /// Scrapes are reviewed by default in a pod, not on a workstation; either way the flag
    /// decides, and a secured /metrics cannot share the health endpoints' port.
    #[test]
    fn metrics_are_secured_in_a_pod_unless_the_flag_says_otherwise() -> Result<(), ConfigError> {
        let pod = RuntimeConfig::resolve(&Flags::default(), &TRADING, in_a_pod)?;
        assert!(pod.metrics_secure);
        let local = flags(&["--metrics-secure=false"]);
        assert!(!RuntimeConfig::resolve(&local, &TRADING, in_a_pod)?.metrics_secure);
        let workstation = RuntimeConfig::resolve(&Flags::default(), &TRADING, no_env)?;
        assert!(!workstation.metrics_secure);
        let asked = flags(&["--metrics-secure"]);
        let secured = RuntimeConfig::resolve(&asked, &TRADING, no_env)?;
        assert!(secured.metrics_secure, "free ports: two listeners");
        let shared = flags(&[
            "--metrics-secure",
            "--metrics-bind-address=:8080",
            "--health-probe-bind-address=:8080",
        ]);
        let err = RuntimeConfig::resolve(&shared, &TRADING, no_env)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("--metrics-bind-address")));
        Ok(())
    }

    /// On a workstation (no KUBERNETES_SERVICE_HOST) nothing binds a fixed port: the health
    /// and metrics endpoints share a free loopback port and the webhooks are off unless asked
    /// for, so several operators run side by side.
    #[test]
    fn out_of_a_cluster_nothing_takes_a_fixed_port() -> Result<(), ConfigError> {
        let c = RuntimeConfig::resolve(&Flags::default(), &TRADING, no_env)?;
        let loopback = "127.0.0.1:0".parse().ok();
        assert_eq!((c.health_address, c.metrics_address), (loopback, loopback));
        assert_eq!(c.webhook, None);

        let asked = flags(&[
            "--webhook-bind-address",
            "127.0.0.1:9443",
            "--webhook-cert-dir",
            "/certs",
        ]);
        let c = RuntimeConfig::resolve(&asked, &TRADING, no_env)?;
        let webhook = c.webhook.expect("asked for");
        assert_eq!(webhook.address, "127.0.0.1:9443".parse().ok().unwrap());
        assert_eq!(
            webhook.certificate,
            WebhookCertificate::Files("/certs".into())
        );

        let path = write(
            "webhook-on",
            "operator:\n  namespace: trading-platform\n  webhook:\n    enabled: true\n",
        );
        let from_file = flags(&["--config", path.to_str().unwrap_or_default()]);
        let c = RuntimeConfig::resolve(&from_file, &TRADING, no_env)?;
        assert_eq!(c.webhook.map(|w| w.address), "0.0.0.0:9443".parse().ok());
        Ok(())
    }

    /// Without --webhook-cert-dir the operator issues its own certificate, for its Service's
    /// names and those the config adds, in a Secret of its namespace: which it must know.
    #[test]
    fn by_default_the_webhook_certificate_is_the_operators_own() -> Result<(), ConfigError> {
        let c = RuntimeConfig::resolve(&Flags::default(), &TRADING, in_a_pod)?;
        let Some(WebhookConfig {
            certificate: WebhookCertificate::SelfManaged(own),
            ..
        }) = c.webhook
        else {
            panic!("expected the operator's own certificate: {:?}", c.webhook);
        };
        assert_eq!(own.namespace, "trading-platform");
        assert_eq!(own.names.secret, "trading-operator-webhook-certificate");
        assert_eq!(
            own.hosts,
            [
                "trading-operator-webhook.trading-platform.svc",
                "trading-operator-webhook.trading-platform.svc.cluster.local"
            ]
        );

        let path = write(
            "webhook-hosts",
            "operator:\n  webhook:\n    hosts: [\"127.0.0.1\"]\n",
        );
        let c = RuntimeConfig::resolve(
            &flags(&["--config", path.to_str().unwrap_or_default()]),
            &TRADING,
            in_a_pod,
        )?;
        let Some(WebhookCertificate::SelfManaged(own)) = c.webhook.map(|w| w.certificate) else {
            panic!("expected the operator's own certificate");
        };
        assert_eq!(own.hosts.last().map(String::as_str), Some("127.0.0.1"));

        let asked = flags(&["--webhook-bind-address", "127.0.0.1:9443"]);
        let error = RuntimeConfig::resolve(&asked, &TRADING, no_env).unwrap_err();
        assert!(error.to_string().contains("POD_NAMESPACE"), "{error}");
        Ok(())
    }

    #[test]
    fn the_seed_file_is_read_and_flags_win() -> Result<(), ConfigError> {
        let path = write("seed", SEED_CONFIG);
        let env = |k: &str| match k {
            "POD_NAMESPACE" => Some("trading-platform".to_string()),
            "POD_NAME" => Some("trading-operator-7d9".to_string()),
            "WATCH_NAMESPACE" => Some("trading".to_string()),
            _ => None,
        };
        let f = flags(&[
            "--config",
            path.to_str().unwrap_or_default(),
            "--metrics-bind-address",
            "127.0.0.1:9090",
            "--log-format",
            "text",
        ]);
        let c = RuntimeConfig::resolve(&f, &TRADING, env)?;
        let election = c.leader_election.clone();
        assert_eq!(
            election.as_ref().map(|e| e.lease_name.as_str()),
            Some("trading-operator-leader")
        );
        assert_eq!(
            election.as_ref().map(|e| e.identity.as_str()),
            Some("trading-operator-7d9")
        );
        assert_eq!(
            election.as_ref().map(|e| e.lease_duration),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            c.metrics_address,
            "127.0.0.1:9090".parse().ok(),
            "the flag beats the file"
        );
        assert_eq!(c.health_address, "0.0.0.0:8081".parse().ok());
        assert_eq!(c.controller.namespace.as_deref(), Some("trading"));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.workloads.default_image.as_deref(), Some("nginx:1.21"));
        assert!(c.workloads.default_resources.is_some());

        let off = flags(&[
            "--config",
            path.to_str().unwrap_or_default(),
            "--leader-elect=false",
            "--health-probe-bind-address",
            "0",
        ]);
        let c = RuntimeConfig::resolve(&off, &TRADING, env)?;
        assert_eq!(c.leader_election, None);
        assert_eq!(c.health_address, None);
        let _ = std::fs::remove_file(path);
        Ok(())
    }

    #[test]
    fn bad_input_names_the_field() {
        let cases = [
            (
                "operator:\n  reconcileInterval: soon\n",
                "operator.reconcileInterval",
            ),
            (
                "operator:\n  leaderElection:\n    enabled: maybe\n",
                "operator.leaderElection.enabled",
            ),
            (
                "operator:\n  metrics:\n    bindAdress: \":1\"\n",
                "operator.metrics",
            ),
            ("trading:\n  defaultImage: [1]\n", "trading.defaultImage"),
            ("operater: {}\n", "operater"),
            (
                "operator:\n  health:\n    bindAddress: nowhere\n",
                "operator.health.bindAddress",
            ),
        ];
        for (i, (content, field)) in cases.iter().enumerate() {
            let path = write(&format!("bad{i}"), content);
            let f = flags(&["--config", path.to_str().unwrap_or_default()]);
            let err = RuntimeConfig::resolve(&f, &TRADING, no_env)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains(field),
                "{content:?} should name {field}: {err}"
            );
            let _ = std::fs::remove_file(path);
        }
        let f = flags(&["--metrics-bind-address", "eighty"]);
        let err = RuntimeConfig::resolve(&f, &TRADING, no_env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("--metrics-bind-address"), "{err}");
        let f = flags(&["--leader-elect"]);
        let err = RuntimeConfig::resolve(&f, &TRADING, no_env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("POD_NAMESPACE"), "{err}");
    }

    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct BackupSettings {
        backup_image: Option<String>,
        #[serde(default)]
        retries: u32,
    }

    const BACKUPS: OperatorBinary = OperatorBinary {
        config_section: "payments",
        settings: OperatorSettings::of::<BackupSettings>(),
        ..TRADING
    };

    #[test]
    fn an_operator_reads_its_own_fields_typed_beside_the_shared_ones() -> Result<(), ConfigError> {
        let path = write(
            "own",
            "payments:\n  monitoringNamespace: prom\n  backupImage: tools:1\n  retries: 3\n",
        );
        let f = flags(&["--config", path.to_str().unwrap_or_default()]);
        let c = RuntimeConfig::resolve(&f, &BACKUPS, no_env)?;
        assert_eq!(c.workloads.monitoring_namespace(), "prom");
        assert_eq!(
            c.own.get::<BackupSettings>(),
            BackupSettings {
                backup_image: Some("tools:1".into()),
                retries: 3
            }
        );
        let _ = std::fs::remove_file(path);

        let none = RuntimeConfig::resolve(&Flags::default(), &BACKUPS, no_env)?;
        assert_eq!(none.own.get::<BackupSettings>(), BackupSettings::default());

        let cases = [
            (
                "payments:\n  retries: many\n",
                "payments.retries",
                "invalid",
            ),
            (
                "payments:\n  backupImg: x\n",
                "payments.backupImg",
                "expected one of defaultImage, defaultResources, defaultLabels, monitoringNamespace, runAsUser, runbookBase, backupImage, retries",
            ),
            (
                "payments:\n  defaultLabels: 3\n",
                "payments.defaultLabels",
                "invalid",
            ),
        ];
        for (i, (content, field, message)) in cases.iter().enumerate() {
            let path = write(&format!("own-bad{i}"), content);
            let f = flags(&["--config", path.to_str().unwrap_or_default()]);
            let err = RuntimeConfig::resolve(&f, &BACKUPS, no_env)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains(field) && err.contains(message),
                "{content:?}: {err}"
            );
            let _ = std::fs::remove_file(path);
        }

        // An operator without fields of its own refuses one.
        let path = write("none-own", "trading:\n  backupImage: x\n");
        let f = flags(&["--config", path.to_str().unwrap_or_default()]);
        let err = RuntimeConfig::resolve(&f, &TRADING, no_env)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("trading.backupImage")));
        let _ = std::fs::remove_file(path);
        Ok(())
    }

    #[test]
    fn prometheus_is_optional_and_a_setting_that_cannot_work_stops_the_start()
    -> Result<(), ConfigError> {
        let none = RuntimeConfig::resolve(&Flags::default(), &TRADING, no_env)?;
        assert_eq!(none.prometheus, None);
        let path = write(
            "prometheus",
            "operator:\n  prometheus:\n    url: http://prometheus.monitoring:9090\n    bearerTokenFile: /var/run/secrets/tokens/prometheus\n    timeout: 2s\n",
        );
        let f = flags(&["--config", path.to_str().unwrap_or_default()]);
        let c = RuntimeConfig::resolve(&f, &TRADING, no_env)?;
        let _ = std::fs::remove_file(path);
        assert_eq!(
            c.prometheus,
            Some(crate::prometheus::PrometheusSettings {
                url: "http://prometheus.monitoring:9090".into(),
                bearer_token_file: Some("/var/run/secrets/tokens/prometheus".into()),
                ca_file: None,
                timeout: Duration::from_secs(2),
            })
        );
        for (i, (content, named)) in [
            ("url: prometheus:9090", "operator.prometheus"),
            (
                "url: http://p:9090\n    timeout: soon",
                "operator.prometheus.timeout",
            ),
            (
                "url: https://p\n    caFile: /nonexistent/ca.pem",
                "/nonexistent/ca.pem",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let path = write(
                &format!("prometheus-bad{i}"),
                &format!("operator:\n  prometheus:\n    {content}\n"),
            );
            let f = flags(&["--config", path.to_str().unwrap_or_default()]);
            let err = RuntimeConfig::resolve(&f, &TRADING, no_env)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            let _ = std::fs::remove_file(path);
            assert!(err.contains(named), "{content}: {err}");
        }
        Ok(())
    }

    #[test]
    fn bind_addresses() {
        assert_eq!(parse_bind_address("0"), Ok(None));
        assert!(parse_bind_address("localhost").is_err());
    }
}
