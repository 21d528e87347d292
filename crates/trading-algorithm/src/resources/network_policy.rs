//! `<name>-network`: the algorithm's pods take connections from their own namespace and the
//! monitoring scrape on the algorithm's port only; egress stays open (market data feeds and
//! venues are outside the cluster, at addresses the spec does not name).

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::network_policy::{Ingress, ingress_policy};

use super::{ALGORITHM_PORT, child_labels, network_policy_name, selector};
use crate::crd::TradingAlgorithm;

pub fn desired_network_policy(ta: &TradingAlgorithm, defaults: &WorkloadDefaults) -> NetworkPolicy {
    let mut policy = ingress_policy(
        network_policy_name(&ta.name_any()),
        &Ingress {
            pods: selector(ta),
            serving_ports: &[ALGORITHM_PORT],
            metrics_port: Some(ALGORITHM_PORT),
            monitoring_namespace: defaults.monitoring_namespace(),
        },
    );
    policy.metadata.labels = Some(child_labels(ta, defaults));
    policy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::sample;

    #[test]
    fn selects_the_algorithms_pods_and_lets_in_its_namespace_and_the_scrape() {
        let policy = desired_network_policy(&sample(), &WorkloadDefaults::default());
        assert_eq!(
            policy.metadata.name.as_deref(),
            Some("momentum-trader-prod-network")
        );
        let spec = policy.spec.unwrap_or_default();
        assert_eq!(
            spec.pod_selector.and_then(|s| s.match_labels),
            Some(selector(&sample()))
        );
        assert_eq!(spec.ingress.map(|i| i.len()), Some(2));
    }
}
