//! The NetworkPolicy every workload gets: who may reach its pods.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

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
