//! `<name>-config`: what the algorithm reads — market data, risk limits and strategy — as one
//! JSON document (`algorithm.json`) and one key per strategy parameter (`parameters.<name>`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use operator_core::apply::short_digest;
use operator_core::builder::WorkloadDefaults;
use serde_json::json;

use super::{child_labels, config_name};
use crate::crd::TradingAlgorithm;

/// The key holding the whole configuration.
pub const CONFIG_KEY: &str = "algorithm.json";

/// The key of a strategy parameter.
pub fn parameter_key(name: &str) -> String {
    format!("parameters.{name}")
}

pub fn desired_config(ta: &TradingAlgorithm, defaults: &WorkloadDefaults) -> ConfigMap {
    let spec = &ta.spec;
    let parameters = spec
        .trading_strategy
        .as_ref()
        .and_then(|s| s.parameters.clone())
        .unwrap_or_default();
    let document = json!({
        "marketData": spec.market_data,
        "riskLimits": spec.risk_limits,
        "tradingStrategy": spec.trading_strategy,
    });
    let mut data = BTreeMap::from([(
        CONFIG_KEY.to_string(),
        serde_json::to_string_pretty(&document).unwrap_or_default(),
    )]);
    data.extend(parameters.into_iter().map(|(k, v)| (parameter_key(&k), v)));
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_name(&ta.name_any())),
            labels: Some(child_labels(ta, defaults)),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// A hash of the configuration: a pod-template annotation, so a change of parameters or
/// risk limits rolls the pods.
pub fn config_hash(config: &ConfigMap) -> String {
    short_digest(
        config
            .data
            .iter()
            .flatten()
            .flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::sample;

    #[test]
    fn parameters_and_limits_are_in_the_config() {
        let cm = desired_config(&sample(), &WorkloadDefaults::default());
        let data = cm.data.unwrap_or_default();
        assert_eq!(data["parameters.lookbackPeriod"], "10m");
        let doc: serde_json::Value = serde_json::from_str(&data[CONFIG_KEY]).unwrap_or_default();
        assert_eq!(doc["riskLimits"]["maxPositionSize"], 5_000_000);
        assert_eq!(doc["marketData"]["sources"], json!(["NYSE", "NASDAQ"]));
    }

    #[test]
    fn the_hash_follows_the_content() {
        let defaults = WorkloadDefaults::default();
        let a = config_hash(&desired_config(&sample(), &defaults));
        assert_eq!(a, config_hash(&desired_config(&sample(), &defaults)));
        let mut changed = sample();
        changed.spec.risk_limits.max_position_size = 7_500_000;
        assert_ne!(a, config_hash(&desired_config(&changed, &defaults)));
    }
}
