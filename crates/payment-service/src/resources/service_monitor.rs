//! The service's `ServiceMonitor`, named after it, scraping its `metrics` port at the path
//! `monitoring.prometheus.path` names.

use std::collections::BTreeMap;

use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::monitoring::{ServiceMonitor, scrape_services};

use super::child_labels;
use crate::crd::{PaymentService, Prometheus};

pub fn desired_service_monitor(
    ps: &PaymentService,
    prometheus: &Prometheus,
    defaults: &WorkloadDefaults,
) -> ServiceMonitor {
    let name = ps.name_any();
    // The Service carries `app` and the operator's standard instance label; both are needed
    // so another team's `app=<name>` Service is never scraped by mistake.
    let selector = BTreeMap::from([
        ("app".to_string(), name.clone()),
        ("app.kubernetes.io/instance".to_string(), name.clone()),
    ]);
    scrape_services(
        &name,
        child_labels(ps, defaults),
        selector,
        "metrics",
        &prometheus.path,
    )
}
