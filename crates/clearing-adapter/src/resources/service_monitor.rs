//! The adapter's `ServiceMonitor`, named after it, scraping `/metrics` on the metrics port.

use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::monitoring::{ServiceMonitor, scrape_services};

use super::service::metrics_port_name;
use super::{child_labels, selector};
use crate::crd::ClearingAdapter;

pub fn desired_service_monitor(
    ca: &ClearingAdapter,
    defaults: &WorkloadDefaults,
) -> ServiceMonitor {
    scrape_services(
        &ca.name_any(),
        child_labels(ca, defaults),
        selector(ca),
        metrics_port_name(ca),
        "/metrics",
    )
}
