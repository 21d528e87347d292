//! The Prometheus Operator's `ServiceMonitor` (monitoring.coreos.com/v1), named after the
//! service, scraping its `metrics` port. Only the fields the operator sets are modelled; the
//! CRD belongs to the Prometheus Operator and may not be installed (the reconcile checks).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ObjectMeta;
use kube::{CustomResource, ResourceExt};
use operator_core::runtime::config::WorkloadDefaults;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::child_labels;
use crate::crd::{PaymentService, Prometheus};

/// How the Prometheus Operator finds the Service and scrapes it.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "ServiceMonitor",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    pub selector: LabelSelector,
    pub endpoints: Vec<Endpoint>,
}

/// One scrape endpoint.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub port: String,
    pub path: String,
    pub interval: String,
}

/// How often Prometheus scrapes the service.
pub const SCRAPE_INTERVAL: &str = "30s";

pub fn desired_service_monitor(
    ps: &PaymentService,
    prometheus: &Prometheus,
    defaults: &WorkloadDefaults,
) -> ServiceMonitor {
    let name = ps.name_any();
    let mut sm = ServiceMonitor::new(
        &name,
        ServiceMonitorSpec {
            // The Service carries `app` and the operator's standard instance label; both are
            // needed so another team's `app=<name>` Service is never scraped by mistake.
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([
                    ("app".to_string(), name.clone()),
                    ("app.kubernetes.io/instance".to_string(), name.clone()),
                ])),
                ..LabelSelector::default()
            },
            endpoints: vec![Endpoint {
                port: "metrics".into(),
                path: prometheus.path.clone(),
                interval: SCRAPE_INTERVAL.into(),
            }],
        },
    );
    sm.metadata = ObjectMeta {
        name: Some(name),
        labels: Some(child_labels(ps, defaults)),
        ..ObjectMeta::default()
    };
    sm
}
