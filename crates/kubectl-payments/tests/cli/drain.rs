//! `kubectl payments drain|restore ca/NAME PARTNER` against a running clearing-adapter
//! operator on testkit (its partner checks answered by a stub: every partner healthy):
//! the answer is the weight the operator then routes by, two drains at once both land, and
//! a partner the adapter does not have is refused before anything is written.

use std::sync::Arc;

use anyhow::Result;
use clearing_adapter::crd::ClearingAdapter;
use clearing_adapter::health::{PartnerProbe, ProbeTarget, Verdict};
use futures::future::BoxFuture;
use kube::CustomResourceExt;
use kubectl_payments::request::Target;
use kubectl_payments::{CliError, drain, kinds};
use operator_harness::Harness;
use serde_json::{Value, json};

use super::{NS, WAIT};

const SAMPLE: &str = "card-clearing";

struct Healthy;

impl PartnerProbe for Healthy {
    fn check<'a>(&'a self, _: &'a ProbeTarget) -> BoxFuture<'a, Verdict> {
        Box::pin(async { Verdict::healthy("HTTP 200") })
    }
}

/// The sample without its Secret references (nothing here reads a credential).
fn adapter() -> Result<Value> {
    let mut ca: Value = operator_harness::sample(SAMPLE)?;
    let config = &mut ca["spec"]["config"];
    for partner in config["bankingPartners"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        partner
            .as_object_mut()
            .map(|p| (p.remove("tls"), p.remove("auth")));
    }
    config.as_object_mut().map(|c| c.remove("encryption"));
    Ok(ca)
}

fn weights(h: &Harness) -> Value {
    let routing = h
        .get("v1", "configmaps", &format!("{SAMPLE}-config"))
        .unwrap_or_default();
    serde_json::from_str(routing["data"]["weights.json"].as_str().unwrap_or("null"))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_and_restore_answer_with_the_weight_the_operator_routes_by() -> Result<()> {
    let h = Harness::builder(|rt| clearing_adapter::controllers(rt, Arc::new(Healthy), None))
        .crd(ClearingAdapter::crd())
        .namespace(NS)
        .resource("payments.io/v1", "clearingadapters")
        .start()
        .await?;
    h.create_ready::<ClearingAdapter>(adapter()?).await?;
    let (kind, name) = kinds::target(&format!("ca/{SAMPLE}"))?;
    let target = Target {
        kind: &kind,
        namespace: NS,
        name: &name,
    };
    let client = h.client();

    let answer = drain::set(&client, target, "acme-bank", true, WAIT).await?;
    assert_eq!(
        answer,
        "partner acme-bank drained: weight 0, its traffic goes to the other partners"
    );
    assert_eq!(weights(&h), json!({"acme-bank": 0, "globex-clearing": 30}));

    // Both at once: each reads, changes its own partner and writes only if nothing changed
    // meanwhile, so neither undoes the other. Every partner is then out: the weights stay.
    drain::set(&client, target, "acme-bank", false, WAIT).await?;
    let (acme, globex) = tokio::join!(
        drain::set(&client, target, "acme-bank", true, WAIT),
        drain::set(&client, target, "globex-clearing", true, WAIT),
    );
    for answer in [acme?, globex?] {
        assert!(answer.contains("keeps its weight"), "{answer}");
    }
    let annotation = h
        .get("payments.io/v1", "clearingadapters", SAMPLE)
        .unwrap_or_default()["metadata"]["annotations"]["payments.io/drain-partners"]
        .clone();
    assert_eq!(annotation, "acme-bank,globex-clearing");
    assert_eq!(weights(&h), json!({"acme-bank": 70, "globex-clearing": 30}));

    let answer = drain::set(&client, target, "globex-clearing", false, WAIT).await?;
    assert_eq!(answer, "partner globex-clearing restored: weight 30");
    assert_eq!(weights(&h), json!({"acme-bank": 0, "globex-clearing": 30}));

    let refused = drain::set(&client, target, "initech", true, WAIT).await;
    match refused {
        Err(CliError::NothingToDo(why)) => assert_eq!(
            why,
            "ClearingAdapter payments/card-clearing has no partner initech (its partners: acme-bank, globex-clearing)"
        ),
        other => panic!("{other:?}"),
    }
    Ok(())
}
