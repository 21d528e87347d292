//! The Service named after the adapter: `http` (payments, and metrics when they share the
//! port), and `metrics` when `monitoring.metricsPort` is a port of its own.

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{meta, named_port, service};

use super::{HTTP_PORT, child_labels, selector};
use crate::crd::ClearingAdapter;

/// The name of the Service port Prometheus scrapes.
pub fn metrics_port_name(ca: &ClearingAdapter) -> &'static str {
    if ca.spec.monitoring.metrics_port == HTTP_PORT {
        "http"
    } else {
        "metrics"
    }
}

pub fn desired_service(ca: &ClearingAdapter, defaults: &WorkloadDefaults) -> Service {
    let mut ports = vec![named_port("http", HTTP_PORT)];
    if metrics_port_name(ca) == "metrics" {
        ports.push(named_port("metrics", ca.spec.monitoring.metrics_port));
    }
    service(
        meta(ca.name_any(), child_labels(ca, defaults)),
        selector(ca),
        ports,
    )
}
