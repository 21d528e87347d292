//! The TradingAlgorithm's admission webhooks (seed 002's `validate.tradingalgorithm.fintech.io`):
//! `validate.rs`'s rules at the door, and the spec's defaults written into the object.

use operator_core::FieldError;
use operator_core::admission::{Admitted, fill_spec};
use serde_json::Value;

use crate::crd::{TradingAlgorithm, TradingAlgorithmSpec};
use crate::resources::hpa::DEFAULT_TARGET_CPU;

pub const ADMISSION: &[Admitted] = &[Admitted {
    default: Some(defaults),
    ..Admitted::of::<TradingAlgorithm>()
}];

/// The autoscaler's target and scale-up policy as the operator applies them when unset, so
/// `kubectl get -o yaml` shows what runs. The image is not defaulted here: it comes from the
/// operator's configuration, which may change.
fn defaults(object: &Value) -> Result<Value, FieldError> {
    fill_spec(object, |spec: &mut TradingAlgorithmSpec| {
        let scaling = &mut spec.scaling_policy;
        scaling
            .target_cpu_utilization
            .get_or_insert(DEFAULT_TARGET_CPU);
        scaling.scale_up_policy.get_or_insert_default();
    })
}
