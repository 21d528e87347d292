//! `payments.io/drain-partners`: a person drains a partner (weight 0, whatever its checks
//! say) and restores it by taking it off; no hand drain takes the last partner carrying
//! traffic out.

use anyhow::Result;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::common::*;

async fn drain(h: &Harness, partners: Option<&str>) -> Result<()> {
    let patch = json!({"metadata": {"annotations": {"payments.io/drain-partners": partners}}});
    h.adapters()
        .patch(SAMPLE, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_partner_drained_by_hand_carries_nothing_until_it_is_taken_off() -> Result<()> {
    let probe = ScriptedProbe::default();
    let h = start_with(probe.clone(), sample()?).await?;
    h.eventually("checked", |h| h.status(SAMPLE)["partnersHealthy"] == "2/2")
        .await?;
    let hash = h.config_hash(SAMPLE);

    drain(&h, Some("acme-bank")).await?;
    h.eventually("drained by hand", |h| h.weights(SAMPLE)["acme-bank"] == 0)
        .await?;
    assert_eq!(h.weights(SAMPLE)["globex-clearing"], 30);
    let status = h.status(SAMPLE);
    let acme = &status["bankingPartnerStatus"][0];
    assert_eq!(
        (
            &acme["drainedByHand"],
            &acme["drained"],
            &acme["effectiveWeight"]
        ),
        (&json!(true), &json!(false), &json!(0))
    );
    let partners = condition(&status, "BankingPartnersHealthy");
    assert_eq!(
        partners["reason"], "AllPartnersHealthy",
        "its checks still pass"
    );
    assert!(
        partners["message"].as_str().is_some_and(|m| m.ends_with(
            "Drained by hand (payments.io/drain-partners), weight 0 until taken off it: acme-bank"
        )),
        "{partners}"
    );
    assert_eq!(h.events("PartnerDrained").len(), 1);
    assert_eq!(
        h.config_hash(SAMPLE),
        hash,
        "a drain does not roll the pods"
    );

    // Checks that pass do not bring it back.
    checks(&h, 3).await?;
    assert_eq!(h.weights(SAMPLE)["acme-bank"], 0);

    drain(&h, None).await?;
    h.eventually("restored", |h| h.weights(SAMPLE)["acme-bank"] == 70)
        .await?;
    assert_eq!(h.events("PartnerRestored").len(), 1);
    assert!(
        h.status(SAMPLE)["bankingPartnerStatus"][0]
            .get("drainedByHand")
            .is_none()
    );
    let metrics = h.metrics().encode();
    for transition in ["drained_by_hand", "restored_by_hand"] {
        assert!(
            metrics.contains(&format!(
                r#"clearing_adapter_partner_transitions_total{{transition="{transition}"}} 1"#
            )),
            "{metrics}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn draining_every_partner_by_hand_keeps_the_weights_and_says_so() -> Result<()> {
    let probe = ScriptedProbe::default();
    let h = start_with(probe.clone(), sample()?).await?;
    h.eventually("checked", |h| h.status(SAMPLE)["partnersHealthy"] == "2/2")
        .await?;
    drain(&h, Some("acme-bank,globex-clearing")).await?;
    h.until_reason(SAMPLE, "BankingPartnersHealthy", "AllPartnersDrained")
        .await?;
    assert_eq!(
        h.weights(SAMPLE),
        json!({"acme-bank": 70, "globex-clearing": 30})
    );
    let message = condition(&h.status(SAMPLE), "BankingPartnersHealthy")["message"].clone();
    assert_eq!(
        message,
        "every partner carrying traffic is drained (by hand, payments.io/drain-partners: acme-bank, globex-clearing); the configured weights are kept, as draining all would stop every payment: take a partner off payments.io/drain-partners"
    );
    assert_eq!(h.events("AllPartnersDrained").len(), 1);
    assert!(
        h.metrics().encode().contains(
            r#"clearing_adapter_partners_all_down{namespace="payments",name="card-clearing"} 0"#
        ),
        "a person's drain is no outage to alert on"
    );

    // A name that is no partner of this adapter is said to drain nothing.
    drain(&h, Some("acme-bank,initech")).await?;
    h.eventually("acme-bank alone drained", |h| {
        h.weights(SAMPLE) == json!({"acme-bank": 0, "globex-clearing": 30})
    })
    .await?;
    h.eventually("the unknown name reported", |h| {
        h.events("AnnotationIgnored").iter().any(|e| {
            e["note"]
                .as_str()
                .is_some_and(|n| n.contains("names no partner initech"))
        })
    })
    .await
}
