//! The ServiceMonitor named after the orchestrator, when Prometheus scraping is on (applied
//! only where the Prometheus Operator is installed).

use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::monitoring::{ServiceMonitor, scrape_services};

use super::{child_labels, selector};
use crate::crd::SagaOrchestrator;

pub fn desired_service_monitor(
    so: &SagaOrchestrator,
    defaults: &WorkloadDefaults,
) -> Option<ServiceMonitor> {
    let prometheus = &so.spec.monitoring.prometheus;
    prometheus.enabled.then(|| {
        let labels = child_labels(so, defaults);
        scrape_services(
            &so.name_any(),
            labels,
            selector(so),
            "metrics",
            &prometheus.path,
        )
    })
}
