//! The ClearingAdapter's admission webhooks over real HTTPS: every rule of `validate.rs`
//! refused naming its field, seed 001's `ValidateUpdate` (no scale-down under high load,
//! by spec edit or `kubectl scale`) against the load a running adapter reports, warnings,
//! and seed 001's `Default` patched in.

use crate::common::*;
use anyhow::Result;
use clearing_adapter::OPERATOR;
use operator_harness::admission::{AdmissionHarness, merged};
use serde_json::json;

operator_harness::admission_tests!(OPERATOR);

async fn webhook(client: kube::Client) -> Result<AdmissionHarness> {
    AdmissionHarness::start(OPERATOR.admission, client).await
}

#[tokio::test]
async fn a_scale_down_under_high_load_is_refused_at_the_door_by_edit_and_by_scale() -> Result<()> {
    let h = start_with(ScriptedProbe::default(), sample()?).await?;
    let webhook = webhook(h.client()).await?;
    let stored = serde_json::to_value(h.adapters().get(SAMPLE).await?)?;
    let down = merged(&stored, json!({"spec": {"replicas": 2}}));

    h.workloads.set_cpu_utilization(NS, SAMPLE, Some(95));
    let refused = webhook.validate("UPDATE", &down, Some(&stored)).await?;
    assert!(!refused.allowed);
    assert_eq!(refused.fields, ["spec.replicas"]);
    assert!(
        refused.message.contains("cannot scale down from 3 to 2")
            && refused.message.contains("95%"),
        "{}",
        refused.message
    );
    let scaled = webhook.scale(&stored, 3, 2).await?;
    assert!(!scaled.allowed, "kubectl scale is held to the same rule");
    assert!(
        scaled.message.contains("cannot scale down from 3 to 2"),
        "{}",
        scaled.message
    );
    let up = webhook.scale(&stored, 3, 5).await?;
    assert!(up.allowed, "scaling up under load is fine: {}", up.message);

    h.workloads.set_cpu_utilization(NS, SAMPLE, Some(40));
    let allowed = webhook.validate("UPDATE", &down, Some(&stored)).await?;
    assert!(
        allowed.allowed,
        "once the load dropped: {}",
        allowed.message
    );
    assert!(webhook.scale(&stored, 3, 2).await?.allowed);
    Ok(())
}
