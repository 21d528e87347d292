//! The Prometheus Operator's `ServiceMonitor` and `PrometheusRule` (monitoring.coreos.com/v1):
//! how an operator's workloads are scraped, and the alerts an operator writes for one of its
//! resources. Only the fields operators set are modelled; the CRDs belong to the Prometheus
//! Operator and may not be installed, so an operator declares them with
//! `ChildKinds::optional_kind` and applies them only when discovery finds them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use kube::api::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The runbooks every alert links to, as published with the project: the default base of
/// deploy/monitoring's `runbook_url`s and of the alerts an operator writes.
pub const RUNBOOK_BASE: &str =
    "https://github.com/payments-engine/operators/blob/main/docs/runbooks.md";

/// How the Prometheus Operator finds a Service and scrapes it.
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

/// How often Prometheus scrapes a workload.
pub const SCRAPE_INTERVAL: &str = "30s";

/// A ServiceMonitor `name` that scrapes `path` on the port named `port` of the Services
/// matching `selector`, every [`SCRAPE_INTERVAL`].
pub fn scrape_services(
    name: &str,
    labels: BTreeMap<String, String>,
    selector: BTreeMap<String, String>,
    port: &str,
    path: &str,
) -> ServiceMonitor {
    ServiceMonitor {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: ServiceMonitorSpec {
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            endpoints: vec![Endpoint {
                port: port.into(),
                path: path.into(),
                interval: SCRAPE_INTERVAL.into(),
            }],
        },
    }
}

/// Alerting rules for Prometheus to evaluate.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "PrometheusRule",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRuleSpec {
    pub groups: Vec<RuleGroup>,
}

/// Rules evaluated together.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<AlertRule>,
}

/// One alert: its PromQL expression, how long it must hold, and what it says.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AlertRule {
    pub alert: String,
    pub expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_monitor_is_what_the_prometheus_operator_reads() {
        let sm = scrape_services(
            "ledger",
            BTreeMap::from([("team".into(), "payments".into())]),
            BTreeMap::from([("app".into(), "ledger".into())]),
            "metrics",
            "/metrics",
        );
        let json = serde_json::to_value(&sm).unwrap_or_default();
        assert_eq!(json["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(json["kind"], "ServiceMonitor");
        assert_eq!(json["metadata"]["labels"]["team"], "payments");
        assert_eq!(json["spec"]["selector"]["matchLabels"]["app"], "ledger");
        assert_eq!(
            json["spec"]["endpoints"],
            serde_json::json!([{"port": "metrics", "path": "/metrics", "interval": "30s"}])
        );
    }
}
