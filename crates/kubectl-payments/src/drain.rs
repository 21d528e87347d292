//! `drain|restore ca/NAME PARTNER`: one banking partner of a ClearingAdapter taken out of its
//! routing table by hand, or given back, through the annotation its operator honours
//! (`payments.io/drain-partners`, the partners drained by hand, comma-separated). The
//! annotation is read, changed for this partner only and written back only if the adapter did
//! not change meanwhile, so two people draining two partners at once both get theirs.

use std::time::Duration;

use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::CliError;
use crate::actions::only;
use crate::request::Target;
use clearing_adapter::{DRAIN_ANNOTATION, drained_partners};

/// How often the annotation is re-read and written again when the adapter changed meanwhile.
const ATTEMPTS: usize = 5;

/// Drains `partner` of the ClearingAdapter `target` (`drained`), or takes it off the hand
/// drain, and returns the partner's weight once the operator has routed by it.
pub async fn set(
    client: &Client,
    target: Target<'_>,
    partner: &str,
    drained: bool,
    wait: Duration,
) -> Result<String, CliError> {
    let action = if drained { "drain" } else { "restore" };
    only(target, action)?;
    for _ in 0..ATTEMPTS {
        let adapter = target.get(client).await?;
        let partners = partners_of(&adapter.data);
        if !partners.iter().any(|p| p == partner) {
            return Err(CliError::NothingToDo(format!(
                "ClearingAdapter {}/{} has no partner {partner} (its partners: {})",
                target.namespace,
                target.name,
                partners.join(", ")
            )));
        }
        let mut named = adapter
            .annotations()
            .get(DRAIN_ANNOTATION)
            .map(|v| drained_partners(v))
            .unwrap_or_default();
        if drained {
            named.insert(partner.to_string());
        } else {
            named.remove(partner);
        }
        // The last partner taken off removes the annotation.
        let value = if named.is_empty() {
            Value::Null
        } else {
            json!(named.into_iter().collect::<Vec<_>>().join(","))
        };
        let seen = adapter.resource_version();
        if target
            .annotate(client, DRAIN_ANNOTATION, value, seen.as_deref())
            .await?
        {
            let what = format!("{action} partner {partner} of");
            return target
                .wait_for(client, &what, wait, |status| {
                    routed(status, partner, drained)
                })
                .await;
        }
    }
    Err(CliError::NothingToDo(format!(
        "ClearingAdapter {}/{} changed {ATTEMPTS} times while {partner} was being written: run the command again",
        target.namespace, target.name
    )))
}

/// The partner names of an adapter's spec, in its order.
fn partners_of(adapter: &Value) -> Vec<String> {
    adapter["spec"]["config"]["bankingPartners"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect()
}

/// The operator's answer: the partner's status shows the hand drain as asked, and its weight.
fn routed(status: &Value, partner: &str, drained: bool) -> Option<String> {
    let state = status["bankingPartnerStatus"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == partner)?;
    if (state["drainedByHand"] == true) != drained {
        return None;
    }
    let weight = state["effectiveWeight"].as_i64().unwrap_or_default();
    Some(match (drained, weight) {
        (true, 0) => {
            format!("partner {partner} drained: weight 0, its traffic goes to the other partners")
        }
        (true, w) => format!(
            "partner {partner} is drained by hand but keeps its weight {w}: every other partner carrying traffic is out too, and draining all would stop every payment"
        ),
        (false, 0) => format!(
            "partner {partner} is no longer drained by hand, but stays drained by its failing health checks"
        ),
        (false, w) => format!("partner {partner} restored: weight {w}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(by_hand: bool, weight: i64) -> Value {
        let mut partner = json!({"name": "acme-bank", "effectiveWeight": weight});
        if by_hand {
            partner["drainedByHand"] = json!(true);
        }
        json!({"bankingPartnerStatus": [partner]})
    }

    #[test]
    fn a_drain_is_answered_once_the_partner_is_drained_by_hand() {
        assert_eq!(routed(&status(false, 70), "acme-bank", true), None);
        assert_eq!(
            routed(&status(true, 0), "acme-bank", true).as_deref(),
            Some("partner acme-bank drained: weight 0, its traffic goes to the other partners")
        );
        assert!(
            routed(&status(true, 70), "acme-bank", true)
                .is_some_and(|a| a.contains("keeps its weight 70"))
        );
        assert_eq!(
            routed(&status(true, 0), "globex", true),
            None,
            "another partner"
        );
    }

    #[test]
    fn a_restore_is_answered_once_the_hand_drain_is_gone() {
        assert_eq!(routed(&status(true, 0), "acme-bank", false), None);
        assert_eq!(
            routed(&status(false, 70), "acme-bank", false).as_deref(),
            Some("partner acme-bank restored: weight 70")
        );
        assert!(
            routed(&status(false, 0), "acme-bank", false)
                .is_some_and(|a| a.contains("failing health checks"))
        );
    }

    #[test]
    fn the_partners_are_read_from_the_spec() {
        let adapter =
            json!({"spec": {"config": {"bankingPartners": [{"name": "a"}, {"name": "b"}]}}});
        assert_eq!(partners_of(&adapter), ["a", "b"]);
        assert!(partners_of(&json!({})).is_empty());
    }
}
