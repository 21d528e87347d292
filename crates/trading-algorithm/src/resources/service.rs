//! `<name>-service`: a ClusterIP Service in front of the algorithm's pods (port 80, as in
//! seed 002, to the pods' `http` port).

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{meta, named_port, service};

use super::{child_labels, selector, service_name};
use crate::crd::TradingAlgorithm;

pub fn desired_service(ta: &TradingAlgorithm, defaults: &WorkloadDefaults) -> Service {
    let meta = meta(service_name(&ta.name_any()), child_labels(ta, defaults));
    service(meta, selector(ta), vec![named_port("http", 80)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::sample;

    #[test]
    fn selects_the_algorithms_pods() {
        let s = desired_service(&sample(), &WorkloadDefaults::default())
            .spec
            .unwrap_or_default();
        assert_eq!(s.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(
            s.selector
                .unwrap_or_default()
                .get("app")
                .map(String::as_str),
            Some("momentum-trader-prod")
        );
        assert_eq!(s.ports.unwrap_or_default()[0].port, 80);
    }
}
