//! The TradingAlgorithm's admission webhook (seed 002's `validate.tradingalgorithm.fintech.io`)
//! over real HTTPS: every rule of `validate.rs` refused naming its field, the sample
//! allowed, warnings, and the autoscaler's defaults patched in.

use anyhow::Result;
use operator_harness::admission::{AdmissionHarness, merged};
use serde_json::{Value, json};
use trading_algorithm::OPERATOR;

async fn harness() -> Result<(AdmissionHarness, Value)> {
    AdmissionHarness::with_sample(
        OPERATOR.admission,
        "sample-momentum-algo",
        "TradingAlgorithm",
    )
    .await
}

#[tokio::test]
async fn every_rule_is_refused_at_admission_naming_its_field() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let cases = include_str!("cases/refused.yaml");
    let allowed = webhook.refuses_each(&sample, cases, None).await?;
    assert!(allowed.warnings.is_empty(), "{:?}", allowed.warnings);
    Ok(())
}

#[tokio::test]
async fn no_stop_loss_is_admitted_with_a_warning() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let unguarded = merged(
        &sample,
        json!({"spec": {"riskLimits": {"stopLossPercentage": null}}}),
    );
    let about = "spec.riskLimits.stopLossPercentage";
    webhook.one_warning(&unguarded, about).await?;
    Ok(())
}

#[tokio::test]
async fn the_autoscalers_defaults_are_patched_in() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let bare = merged(
        &sample,
        json!({"spec": {"scalingPolicy": {"targetCPUUtilization": null, "scaleUpPolicy": null}}}),
    );
    let patched = webhook.defaulted(&bare).await?;
    assert_eq!(
        patched["spec"]["scalingPolicy"],
        json!({"minReplicas": 2, "maxReplicas": 20, "targetCPUUtilization": 80, "scaleUpPolicy": "moderate"})
    );
    assert_eq!(patched["spec"]["marketData"], sample["spec"]["marketData"]);
    assert!(
        patched["spec"].get("image").is_none(),
        "the image comes from the operator's configuration"
    );
    Ok(())
}
