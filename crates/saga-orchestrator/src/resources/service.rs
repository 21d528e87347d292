//! The Service named after the orchestrator: `http` 8080 and `metrics` when scraped.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use operator_core::runtime::config::WorkloadDefaults;

use super::{HTTP_PORT, meta, selector};
use crate::crd::SagaOrchestrator;

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

pub fn desired_service(so: &SagaOrchestrator, defaults: &WorkloadDefaults) -> Service {
    let mut ports = vec![port("http", HTTP_PORT)];
    let prometheus = &so.spec.monitoring.prometheus;
    if prometheus.enabled {
        ports.push(port("metrics", prometheus.port));
    }
    Service {
        metadata: meta(so.name_any(), so, defaults),
        spec: Some(ServiceSpec {
            selector: Some(selector(so)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
