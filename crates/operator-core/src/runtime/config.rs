//! An operator binary's configuration: flags (seed 000's operator Deployment), the optional
//! `--config` YAML file (seed 002's `trading-operator-config` is the model) and the pod's
//! environment. Flags beat the file, the file beats defaults; anything invalid is an error
//! that names the flag or field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceRequirements;
use serde::Deserialize;

use crate::controller::ControllerSettings;

/// The flags every operator binary takes.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Parser)]
#[command(version)]
pub struct Flags {
    /// Elect a leader through a coordination.k8s.io/v1 Lease; only the leader reconciles.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: Option<bool>,
    /// Address of /healthz and /readyz ([host]:port, or 0 to disable). Default :8081.
    #[arg(long)]
    pub health_probe_bind_address: Option<String>,
    /// Address of /metrics ([host]:port, or 0 to disable). Default :8080.
    #[arg(long)]
    pub metrics_bind_address: Option<String>,
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
struct OperatorSection {
    name: Option<String>,
    namespace: Option<String>,
    reconcile_interval: Option<String>,
    leader_election: Option<LeaderElectionSection>,
    metrics: Option<EndpointSection>,
    health: Option<EndpointSection>,
}

/// Defaults for the workloads an operator creates (the seed's `trading:` section).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadDefaults {
    pub default_image: Option<String>,
    pub default_resources: Option<ResourceRequirements>,
    #[serde(default)]
    pub default_labels: BTreeMap<String, String>,
    /// Image of the backup Jobs an operator schedules; it needs `sh`, `find` and `kubectl`.
    pub backup_image: Option<String>,
    /// The namespace Prometheus scrapes from: each workload's NetworkPolicy lets it reach the
    /// metrics port. Default `monitoring`.
    pub monitoring_namespace: Option<String>,
}

impl WorkloadDefaults {
    /// [`Self::monitoring_namespace`] or its default.
    pub fn monitoring_namespace(&self) -> &str {
        self.monitoring_namespace.as_deref().unwrap_or("monitoring")
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
struct FileConfig {
    operator: OperatorSection,
    workloads: WorkloadDefaults,
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

/// A Kubernetes-style duration: `500ms`, `30s`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
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

fn load_file(path: &Path, workload_key: &str) -> Result<FileConfig, ConfigError> {
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
        } else if key == workload_key {
            config.workloads = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
                file_error(
                    format!("{workload_key}.{}", e.path()),
                    e.inner().to_string(),
                )
            })?;
        } else {
            return Err(file_error(
                key.to_string(),
                format!("unknown section, expected `operator` or `{workload_key}`"),
            ));
        }
    }
    Ok(config)
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

/// Everything a running operator needs, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeConfig {
    pub leader_election: Option<LeaderElectionConfig>,
    pub health_address: Option<SocketAddr>,
    pub metrics_address: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub controller: ControllerSettings,
    pub workloads: WorkloadDefaults,
}

impl RuntimeConfig {
    /// One process on its own, as tests and tools run it: no leader election, no admin
    /// endpoints, text logs, no workload defaults.
    pub fn standalone(controller: ControllerSettings) -> Self {
        Self {
            leader_election: None,
            health_address: None,
            metrics_address: None,
            log_format: LogFormat::Text,
            controller,
            workloads: WorkloadDefaults::default(),
        }
    }

    /// Resolves flags, the file they name, and the environment (`WATCH_NAMESPACE`,
    /// `POD_NAMESPACE`, `POD_NAME`, read through `env`). `manager` names the default lease
    /// (`<manager>-leader`); `workload_key` is the operator's section in the file.
    pub fn resolve(
        flags: &Flags,
        manager: &str,
        workload_key: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file = match &flags.config {
            Some(path) => load_file(path, workload_key)?,
            None => FileConfig::default(),
        };
        let op = &file.operator;
        let env = |k: &str| env(k).filter(|v| !v.is_empty());

        let mut controller = ControllerSettings::default();
        if let Some(interval) = &op.reconcile_interval {
            controller.resync = parse_duration(interval)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    invalid(
                        "operator.reconcileInterval",
                        format!("invalid duration {interval:?}: expected e.g. 30s, 5m"),
                    )
                })?;
        }
        controller.namespace = env("WATCH_NAMESPACE");

        let endpoint = |flag: &Option<String>,
                        flag_name: &str,
                        section: &Option<EndpointSection>,
                        field: &str,
                        default: &str| {
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
        };
        let health_address = endpoint(
            &flags.health_probe_bind_address,
            "--health-probe-bind-address",
            &op.health,
            "health",
            ":8081",
        )?;
        let metrics_address = endpoint(
            &flags.metrics_bind_address,
            "--metrics-bind-address",
            &op.metrics,
            "metrics",
            ":8080",
        )?;

        let election = op.leader_election.clone().unwrap_or_default();
        let elect = flags.leader_elect.or(election.enabled).unwrap_or(false);
        let leader_election = if elect {
            let namespace = env("POD_NAMESPACE")
                .or_else(|| op.namespace.clone())
                .ok_or_else(|| invalid("POD_NAMESPACE", "leader election needs the namespace of its Lease: set POD_NAMESPACE (from the downward API) or operator.namespace"))?;
            let identity = env("POD_NAME")
                .unwrap_or_else(|| format!("{manager}-{:08x}", rand::random::<u32>()));
            Some(LeaderElectionConfig {
                lease_name: election.id.unwrap_or_else(|| format!("{manager}-leader")),
                namespace,
                identity,
                lease_duration: Duration::from_secs(15),
                renew_deadline: Duration::from_secs(10),
                retry_period: Duration::from_secs(2),
            })
        } else {
            None
        };
        Ok(Self {
            leader_election,
            health_address,
            metrics_address,
            log_format: flags.log_format.unwrap_or_default(),
            controller,
            workloads: file.workloads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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

    #[test]
    fn defaults_follow_the_seed_deployment() -> Result<(), ConfigError> {
        let c = RuntimeConfig::resolve(&Flags::default(), "trading-operator", "trading", no_env)?;
        assert_eq!(c.health_address, "0.0.0.0:8081".parse().ok());
        assert_eq!(c.metrics_address, "0.0.0.0:8080".parse().ok());
        assert_eq!(c.controller.resync, Duration::from_secs(30));
        assert_eq!(c.leader_election, None);
        assert_eq!(c.log_format, LogFormat::Json);
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
        let c = RuntimeConfig::resolve(&f, "trading-operator", "trading", env)?;
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
        let c = RuntimeConfig::resolve(&off, "trading-operator", "trading", env)?;
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
            let err = RuntimeConfig::resolve(&f, "trading-operator", "trading", no_env)
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
        let err = RuntimeConfig::resolve(&f, "x", "x", no_env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("--metrics-bind-address"), "{err}");
        let f = flags(&["--leader-elect"]);
        let err = RuntimeConfig::resolve(&f, "x", "x", no_env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("POD_NAMESPACE"), "{err}");
    }

    #[test]
    fn durations_and_addresses() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("5h"), Some(Duration::from_secs(18000)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_bind_address("0"), Ok(None));
        assert!(parse_bind_address("localhost").is_err());
    }
}
