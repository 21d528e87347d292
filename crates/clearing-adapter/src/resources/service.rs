//! The Service named after the adapter: `http` (payments, and metrics when they share the
//! port), and `metrics` when `monitoring.metricsPort` is a port of its own.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use operator_core::runtime::config::WorkloadDefaults;

use super::{HTTP_PORT, labels, selector};
use crate::crd::ClearingAdapter;

/// The name of the Service port Prometheus scrapes.
pub fn metrics_port_name(ca: &ClearingAdapter) -> &'static str {
    if ca.spec.monitoring.metrics_port == HTTP_PORT {
        "http"
    } else {
        "metrics"
    }
}

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

pub fn desired_service(ca: &ClearingAdapter, defaults: &WorkloadDefaults) -> Service {
    let mut ports = vec![port("http", HTTP_PORT)];
    if metrics_port_name(ca) == "metrics" {
        ports.push(port("metrics", ca.spec.monitoring.metrics_port));
    }
    Service {
        metadata: ObjectMeta {
            name: Some(ca.name_any()),
            labels: Some(labels(ca, defaults)),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector(ca)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
