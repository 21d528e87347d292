//! The service's NetworkPolicy (named after it): its pods take payments from their own
//! namespace on the HTTP port, and the monitoring scrape on the metrics port; nothing else
//! reaches them. Egress stays open: the database, Redis and Kafka it calls may live anywhere.

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::network_policy::{Ingress, ingress_policy};

use super::{DEFAULT_METRICS_PORT, HTTP_PORT, child_labels, selector};
use crate::crd::PaymentService;

pub fn desired_network_policy(ps: &PaymentService, defaults: &WorkloadDefaults) -> NetworkPolicy {
    let metrics_port = ps
        .spec
        .prometheus()
        .map_or(DEFAULT_METRICS_PORT, |p| p.port);
    let mut policy = ingress_policy(
        ps.name_any(),
        &Ingress {
            pods: selector(ps),
            serving_ports: &[HTTP_PORT],
            metrics_port: Some(metrics_port),
            monitoring_namespace: defaults.monitoring_namespace(),
        },
    );
    policy.metadata.labels = Some(child_labels(ps, defaults));
    policy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::{service, spec};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn every_track_of_the_service_is_covered_and_the_scrape_reaches_the_metrics_port() {
        let ps = service(spec());
        let policy = desired_network_policy(&ps, &WorkloadDefaults::default());
        let spec = policy.spec.unwrap_or_default();
        assert_eq!(
            spec.pod_selector.and_then(|s| s.match_labels),
            Some(selector(&ps))
        );
        let rules = spec.ingress.unwrap_or_default();
        let ports: Vec<Option<IntOrString>> = rules
            .iter()
            .map(|r| r.ports.clone().unwrap_or_default()[0].port.clone())
            .collect();
        let metrics = ps
            .spec
            .prometheus()
            .map_or(DEFAULT_METRICS_PORT, |p| p.port);
        assert_eq!(
            ports,
            vec![
                Some(IntOrString::Int(HTTP_PORT)),
                Some(IntOrString::Int(metrics))
            ]
        );
    }
}
