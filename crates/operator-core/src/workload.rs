//! What every pod an operator creates shares: the restricted Pod Security Standard, and the
//! health-check fields of the specs (with their translation to container probes).

use k8s_openapi::api::core::v1::{
    Capabilities, HTTPGetAction, PodSecurityContext, Probe, SeccompProfile, SecurityContext,
    TCPSocketAction,
};
use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Probes of a workload's container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Restarts a container that stops answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<HttpProbe>,
    /// Takes a pod out of the Service until it answers; a rollout waits for it, and a new
    /// version whose pods never become ready does not replace the old one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<HttpProbe>,
}

/// An HTTP probe.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpProbe {
    /// Where to send the GET.
    pub http_get: HttpGet,
    /// Seconds after start before the first probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub initial_delay_seconds: Option<i32>,
    /// Seconds between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub period_seconds: Option<i32>,
}

/// An HTTP GET on the pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpGet {
    /// Request path, starting with `/`.
    #[schemars(regex(pattern = r"^/\S*$"))]
    pub path: String,
    /// Container port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

impl HttpProbe {
    /// The container probe.
    pub fn probe(&self) -> Probe {
        Probe {
            http_get: Some(HTTPGetAction {
                path: Some(self.http_get.path.clone()),
                port: IntOrString::Int(self.http_get.port),
                ..HTTPGetAction::default()
            }),
            initial_delay_seconds: self.initial_delay_seconds,
            period_seconds: self.period_seconds,
            ..Probe::default()
        }
    }
}

/// A TCP probe of `port`: what a workload gets when its spec names no health check, so a pod
/// counts as ready only once it listens.
pub fn tcp_probe(port: i32, initial_delay_seconds: i32, period_seconds: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            ..TCPSocketAction::default()
        }),
        initial_delay_seconds: Some(initial_delay_seconds),
        period_seconds: Some(period_seconds),
        ..Probe::default()
    }
}

/// The non-root user and group workloads run as (the distroless `nonroot` user).
pub const RUN_AS: i64 = 65532;

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..SeccompProfile::default()
    }
}

/// Restricted pod security for a pod: non-root, the runtime's default seccomp profile.
pub fn restricted_pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..PodSecurityContext::default()
    }
}

/// Restricted pod security for a container: non-root, no privilege escalation, no
/// capabilities, read-only root filesystem, the runtime's default seccomp profile.
pub fn restricted_container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

/// Who may reach a workload's pods: its own namespace on the serving ports, and the
/// monitoring namespace on the metrics port. Egress is left open (the specs do not name the
/// destinations a workload calls: databases, brokers, market feeds).
#[derive(Clone, Debug, PartialEq)]
pub struct Ingress<'a> {
    /// The pods (the workload's selector labels).
    pub pods: BTreeMap<String, String>,
    /// Ports any pod of the namespace may reach.
    pub serving_ports: &'a [i32],
    /// The port Prometheus scrapes, from `monitoring_namespace`.
    pub metrics_port: Option<i32>,
    pub monitoring_namespace: &'a str,
}

/// The NetworkPolicy `name` for [`Ingress`]: what a manifest scanner asks every pod to have.
pub fn ingress_policy(name: String, ingress: &Ingress<'_>) -> NetworkPolicy {
    let ports = |ports: &[i32]| {
        Some(
            ports
                .iter()
                .map(|p| NetworkPolicyPort {
                    port: Some(IntOrString::Int(*p)),
                    protocol: Some("TCP".into()),
                    ..NetworkPolicyPort::default()
                })
                .collect(),
        )
    };
    let same_namespace = NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector::default()),
            ..NetworkPolicyPeer::default()
        }]),
        ports: ports(ingress.serving_ports),
    };
    let scrape = ingress.metrics_port.map(|port| NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    ingress.monitoring_namespace.to_string(),
                )])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        }]),
        ports: ports(&[port]),
    });
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(ingress.pods.clone()),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(std::iter::once(same_namespace).chain(scrape).collect()),
            ..NetworkPolicySpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_reaches_the_serving_ports_and_monitoring_the_metrics_port() {
        let policy = ingress_policy(
            "svc".into(),
            &Ingress {
                pods: BTreeMap::from([("app".to_string(), "svc".to_string())]),
                serving_ports: &[8080],
                metrics_port: Some(9090),
                monitoring_namespace: "monitoring",
            },
        );
        let spec = policy.spec.unwrap_or_default();
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
        let rules = spec.ingress.unwrap_or_default();
        assert_eq!(rules.len(), 2);
        let port =
            |r: &NetworkPolicyIngressRule| r.ports.clone().unwrap_or_default()[0].port.clone();
        assert_eq!(port(&rules[0]), Some(IntOrString::Int(8080)));
        assert_eq!(port(&rules[1]), Some(IntOrString::Int(9090)));
        let from = rules[1].from.clone().unwrap_or_default();
        assert_eq!(
            from[0]
                .namespace_selector
                .clone()
                .and_then(|s| s.match_labels),
            Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                "monitoring".to_string()
            )]))
        );
    }
}
