//! The Service named after the orchestrator: `http` 8080 and `metrics` when scraped.

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{named_port, service};

use super::{HTTP_PORT, meta, selector};
use crate::crd::SagaOrchestrator;

pub fn desired_service(so: &SagaOrchestrator, defaults: &WorkloadDefaults) -> Service {
    let mut ports = vec![named_port("http", HTTP_PORT)];
    let prometheus = &so.spec.monitoring.prometheus;
    if prometheus.enabled {
        ports.push(named_port("metrics", prometheus.port));
    }
    service(meta(so.name_any(), so, defaults), selector(so), ports)
}
