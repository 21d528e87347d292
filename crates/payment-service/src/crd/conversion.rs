//! Converting a PaymentService between v1 and v2 without loss, as the API server asks the
//! operator's conversion webhook to. Only `spec.deploymentStrategy` differs:
//!
//! | v1 | v2 |
//! | --- | --- |
//! | `type: RollingUpdate` | `rollingUpdate: {}` |
//! | `type: Canary`, `canarySteps` | `canary: {steps}` |
//! | `type: BlueGreen` | `blueGreen: {}` |
//! | `progressDeadlineSeconds` | `progressDeadlineSeconds` |
//! | — | `rollingUpdate.maxSurge`, `canary.analysis`, `blueGreen.previewService`, `blueGreen.autoPromote` |
//! | `canarySteps` beside another `type` | — |
//!
//! What one version cannot say is kept in the annotation [`CONVERSION_DATA`] of the
//! converted object, and restored when it is converted back (as Kubernetes' own types keep
//! what an older version lacks), so v1 → v2 → v1 and v2 → v1 → v2 give back what went in.
//! Every other field passes through as it is, known to this operator or not.

use serde_json::{Map, Value, json};

use super::v1;
use super::{DeploymentStrategy, StrategyType};

/// Where a converted object keeps what its version cannot say.
pub const CONVERSION_DATA: &str = "payments.io/conversion-data";

pub const V1: &str = "payments.io/v1";
pub const V2: &str = "payments.io/v2";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConversionError {
    #[error(
        "cannot convert a PaymentService from {from:?} to {to:?}: the served versions are payments.io/v1 and payments.io/v2"
    )]
    Version { from: String, to: String },
    #[error("spec.deploymentStrategy is not a valid {version} strategy: {message}")]
    Strategy {
        version: &'static str,
        message: String,
    },
}

/// `object` (a whole PaymentService, v1 or v2) as `api_version`.
pub fn convert(mut object: Value, api_version: &str) -> Result<Value, ConversionError> {
    let from = object["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match (from.as_str(), api_version) {
        (a, b) if a == b => Ok(object),
        (V1, V2) => {
            to_v2(&mut object)?;
            Ok(object)
        }
        (V2, V1) => {
            to_v1(&mut object)?;
            Ok(object)
        }
        _ => Err(ConversionError::Version {
            from,
            to: api_version.to_string(),
        }),
    }
}

/// Takes the conversion data out of the object's annotations (dropping the map if that
/// leaves it empty); data that is not JSON is dropped.
fn take_data(object: &mut Value) -> Map<String, Value> {
    // `get_mut`: indexing would insert the key it looks for.
    let Some(annotations) = object
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    else {
        return Map::new();
    };
    let data = annotations.remove(CONVERSION_DATA).and_then(|v| {
        v.as_str()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
    });
    if annotations.is_empty()
        && let Some(metadata) = object["metadata"].as_object_mut()
    {
        metadata.remove("annotations");
    }
    match data {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn put_data(object: &mut Value, key: &str, data: Map<String, Value>) {
    if data.is_empty() {
        return;
    }
    if !object["metadata"]["annotations"].is_object() {
        object["metadata"]["annotations"] = json!({});
    }
    object["metadata"]["annotations"][CONVERSION_DATA] =
        json!(json!({ key: Value::Object(data) }).to_string());
}

fn strategy_of<T: serde::de::DeserializeOwned>(
    object: &Value,
    version: &'static str,
) -> Result<Option<T>, ConversionError> {
    let strategy = &object["spec"]["deploymentStrategy"];
    if strategy.is_null() {
        return Ok(None);
    }
    serde_json::from_value(strategy.clone())
        .map(Some)
        .map_err(|e| ConversionError::Strategy {
            version,
            message: e.to_string(),
        })
}

fn set_strategy<T: serde::Serialize>(object: &mut Value, strategy: &T) {
    object["spec"]["deploymentStrategy"] = serde_json::to_value(strategy).unwrap_or(Value::Null);
}

fn to_v2(object: &mut Value) -> Result<(), ConversionError> {
    let saved = take_data(object);
    object["apiVersion"] = json!(V2);
    let Some(old) = strategy_of::<v1::DeploymentStrategy>(object, "v1")? else {
        return Ok(());
    };
    let kept = saved.get("v2").cloned().unwrap_or(Value::Null);
    let mut new = DeploymentStrategy::of(
        old.type_,
        old.canary_steps.clone(),
        old.progress_deadline_seconds,
    );
    if let Some(rolling) = new.rolling_update.as_mut() {
        rolling.max_surge = serde_json::from_value(kept["maxSurge"].clone()).ok();
    }
    if let Some(canary) = new.canary.as_mut() {
        canary.analysis = serde_json::from_value(kept["analysis"].clone()).ok();
    }
    if let Some(blue_green) = new.blue_green.as_mut() {
        blue_green.preview_service = serde_json::from_value(kept["previewService"].clone()).ok();
        blue_green.auto_promote = serde_json::from_value(kept["autoPromote"].clone()).ok();
    }
    set_strategy(object, &new);
    let mut lost = Map::new();
    if old.type_ != StrategyType::Canary && !old.canary_steps.is_empty() {
        lost.insert("canarySteps".into(), json!(old.canary_steps));
    }
    put_data(object, "v1", lost);
    Ok(())
}

fn to_v1(object: &mut Value) -> Result<(), ConversionError> {
    let saved = take_data(object);
    object["apiVersion"] = json!(V1);
    let Some(new) = strategy_of::<DeploymentStrategy>(object, "v2")? else {
        return Ok(());
    };
    let type_ = new.type_();
    let canary_steps = match (&new.canary, type_) {
        (Some(canary), StrategyType::Canary) => canary.steps.clone(),
        _ => saved
            .get("v1")
            .and_then(|v| serde_json::from_value(v["canarySteps"].clone()).ok())
            .unwrap_or_default(),
    };
    set_strategy(
        object,
        &v1::DeploymentStrategy {
            type_,
            canary_steps,
            progress_deadline_seconds: new.progress_deadline_seconds,
        },
    );
    let mut lost = Map::new();
    match type_ {
        StrategyType::Canary => {
            if let Some(analysis) = new.canary.as_ref().and_then(|c| c.analysis.as_ref()) {
                lost.insert("analysis".into(), json!(analysis));
            }
        }
        StrategyType::BlueGreen => {
            let blue_green = new.blue_green.clone().unwrap_or_default();
            if let Some(preview) = blue_green.preview_service {
                lost.insert("previewService".into(), json!(preview));
            }
            if let Some(auto) = blue_green.auto_promote {
                lost.insert("autoPromote".into(), json!(auto));
            }
        }
        StrategyType::RollingUpdate => {
            if let Some(surge) = new
                .rolling_update
                .as_ref()
                .and_then(|r| r.max_surge.as_ref())
            {
                lost.insert("maxSurge".into(), json!(surge));
            }
        }
    }
    put_data(object, "v2", lost);
    Ok(())
}

#[cfg(test)]
mod tests;
