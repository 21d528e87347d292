//! The NetworkPolicy named after the adapter. Ingress: payments from pods of its own
//! namespace, metrics from the monitoring namespace. Egress: the partners' ports (the port of
//! each endpoint, 443 when it names none) and DNS, nothing else. A NetworkPolicy cannot name
//! hosts, so the partners' addresses are not pinned: their ports are (docs/clearing-adapter.md).

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::network_policy::{Ingress, ingress_policy};

use super::{HTTP_PORT, child_labels, selector};
use crate::crd::ClearingAdapter;

/// The port of an `https://` endpoint: the one it names, or 443.
pub fn endpoint_port(endpoint: &str) -> i32 {
    endpoint
        .strip_prefix("https://")
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .and_then(|authority| authority.rsplit_once(':'))
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .map_or(443, i32::from)
}

fn port(port: i32, protocol: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some(protocol.into()),
        ..NetworkPolicyPort::default()
    }
}

pub fn desired_network_policy(ca: &ClearingAdapter, defaults: &WorkloadDefaults) -> NetworkPolicy {
    let metrics_port = ca.spec.monitoring.metrics_port;
    let mut policy = ingress_policy(
        ca.name_any(),
        &Ingress {
            pods: selector(ca),
            serving_ports: &[HTTP_PORT],
            metrics_port: Some(metrics_port),
            monitoring_namespace: defaults.monitoring_namespace(),
        },
    );
    policy.metadata.labels = Some(child_labels(ca, defaults));
    let partner_ports: BTreeSet<i32> = ca
        .spec
        .config
        .banking_partners
        .iter()
        .map(|p| endpoint_port(&p.endpoint))
        .collect();
    let partners = NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: "0.0.0.0/0".into(),
                except: None,
            }),
            ..NetworkPolicyPeer::default()
        }]),
        ports: Some(partner_ports.into_iter().map(|p| port(p, "TCP")).collect()),
    };
    let dns = NetworkPolicyEgressRule {
        to: None,
        ports: Some(vec![port(53, "UDP"), port(53, "TCP")]),
    };
    if let Some(spec) = policy.spec.as_mut() {
        spec.policy_types = Some(vec!["Ingress".into(), "Egress".into()]);
        spec.egress = Some(vec![partners, dns]);
    }
    policy
}
