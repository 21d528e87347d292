//! The health-check fields of the specs, and their translation to container probes.

use k8s_openapi::api::core::v1::{HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Probes of a workload's container.
#[serde_with::skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Restarts a container that stops answering.
    pub liveness: Option<HttpProbe>,
    /// Takes a pod out of the Service until it answers; a rollout waits for it, and a new
    /// version whose pods never become ready does not replace the old one.
    pub readiness: Option<HttpProbe>,
}

/// An HTTP probe.
#[serde_with::skip_serializing_none]
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpProbe {
    /// Where to send the GET.
    pub http_get: HttpGet,
    /// Seconds after start before the first probe.
    #[schemars(range(min = 0, max = 3600))]
    pub initial_delay_seconds: Option<i32>,
    /// Seconds between probes.
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
