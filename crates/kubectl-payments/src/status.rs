//! `kubectl payments status`: every resource of the five kinds with Ready, phase, reason, what
//! its status says to do, whether it is paused, and the last Warning event about it.

use std::collections::HashMap;

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ListParams};
use operator_core::pause::PAUSED;
use serde::Serialize;
use serde_json::Value;

use crate::CliError;
use crate::kinds::{self, Kind};

/// One resource as `status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    /// The `Ready` condition's status: `True`, `False`, or `Unknown` before the first pass.
    pub ready: String,
    pub phase: String,
    pub reason: String,
    /// The `Ready` condition's message: what is true, and what to change.
    pub message: String,
    /// The `Paused` condition's message while the resource is paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_warning: Option<Warning>,
}

/// The newest Warning event about a resource.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Warning {
    pub reason: String,
    pub note: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// Every resource of the five kinds in `namespace` (every namespace with `None`). A kind whose
/// CRD is not installed is left out.
pub async fn rows(client: &Client, namespace: Option<&str>) -> Result<Vec<Row>, CliError> {
    let warnings = last_warnings(client, namespace).await?;
    let mut rows = Vec::new();
    for kind in kinds::all() {
        let objects = match kind
            .api(client, namespace)
            .list(&ListParams::default())
            .await
        {
            Ok(list) => list.items,
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(e) => return Err(e.into()),
        };
        for object in objects {
            let uid = object.metadata.uid.clone().unwrap_or_default();
            rows.push(row(
                &kind,
                object.metadata.namespace.unwrap_or_default(),
                object.metadata.name.unwrap_or_default(),
                &object.data["status"],
                warnings.get(&uid).cloned(),
            ));
        }
    }
    Ok(rows)
}

/// One resource's row from its status (as JSON).
pub fn row(
    kind: &Kind,
    namespace: String,
    name: String,
    status: &Value,
    last_warning: Option<Warning>,
) -> Row {
    let condition = |type_: &str| condition(status, type_).cloned();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let ready = condition("Ready").unwrap_or_default();
    let paused = condition(PAUSED).filter(|c| c["status"] == "True");
    Row {
        namespace,
        kind: kind.resource.kind.clone(),
        name,
        ready: ready["status"].as_str().unwrap_or("Unknown").to_string(),
        phase: text(&status["phase"]),
        reason: text(&ready["reason"]),
        message: text(&ready["message"]),
        paused: paused.map(|c| text(&c["message"])),
        last_warning,
    }
}

/// Condition `type_` of a status read as JSON.
pub fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// When an event last happened: the latest of its series' last observation, its time and
/// its deprecated timestamp (each writer sets a different one).
pub fn event_time(event: &Event) -> Option<Timestamp> {
    [
        event.series.as_ref().map(|s| s.last_observed_time.0),
        event.event_time.as_ref().map(|t| t.0),
        event.deprecated_last_timestamp.as_ref().map(|t| t.0),
    ]
    .into_iter()
    .flatten()
    .max()
}

/// The newest Warning event about each object (by uid) in scope.
async fn last_warnings(
    client: &Client,
    namespace: Option<&str>,
) -> Result<HashMap<String, Warning>, CliError> {
    let api: Api<Event> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut newest: HashMap<String, (Option<Timestamp>, Warning)> = HashMap::new();
    for event in api.list(&ListParams::default()).await?.items {
        if event.type_.as_deref() != Some("Warning") {
            continue;
        }
        let Some(uid) = event.regarding.as_ref().and_then(|r| r.uid.clone()) else {
            continue;
        };
        let at = event_time(&event);
        let warning = Warning {
            reason: event.reason.unwrap_or_default(),
            note: event.note.unwrap_or_default(),
            at: at.map(|t| t.to_string()),
        };
        match newest.get(&uid) {
            Some((seen, _)) if *seen >= at => {}
            _ => {
                newest.insert(uid, (at, warning));
            }
        }
    }
    Ok(newest.into_iter().map(|(uid, (_, w))| (uid, w)).collect())
}

/// The rows as a table, with what to do under each resource that is not Ready, is paused or
/// has a Warning.
pub fn table(rows: &[Row], all_namespaces: bool) -> String {
    let mut lines: Vec<Vec<String>> = vec![
        ["NAMESPACE", "KIND", "NAME", "READY", "PHASE", "REASON"]
            .map(String::from)
            .to_vec(),
    ];
    for r in rows {
        lines.push(vec![
            r.namespace.clone(),
            r.kind.clone(),
            r.name.clone(),
            r.ready.clone(),
            r.phase.clone(),
            r.reason.clone(),
        ]);
    }
    let skip = usize::from(!all_namespaces);
    let widths: Vec<usize> = (0..6)
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or_default())
        .collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .skip(skip)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
        let Some(r) = i.checked_sub(1).map(|i| &rows[i]) else {
            continue;
        };
        if let Some(paused) = &r.paused {
            out.push_str(&format!("    paused: {paused}\n"));
        }
        if r.ready != "True" && !r.message.is_empty() {
            out.push_str(&format!("    {}\n", r.message));
        }
        if let Some(w) = &r.last_warning {
            let at =
                w.at.as_deref()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default();
            out.push_str(&format!("    last warning{at}: {}: {}\n", w.reason, w.note));
        }
    }
    if rows.is_empty() {
        out = "no PaymentService, BatchProcessor, ClearingAdapter, SagaOrchestrator or TradingAlgorithm found\n".into();
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kind() -> Kind {
        kinds::target("ca/x").unwrap().0
    }

    #[test]
    fn a_row_says_what_the_status_says() {
        let status = json!({"phase": "Degraded", "conditions": [
            {"type": "Ready", "status": "False", "reason": "SecretMissing",
             "message": "Secret partner-creds not found: create it"},
            {"type": "Paused", "status": "True", "message": "paused by me"},
        ]});
        let r = row(&kind(), "payments".into(), "card".into(), &status, None);
        assert_eq!((r.ready.as_str(), r.phase.as_str()), ("False", "Degraded"));
        assert_eq!(r.reason, "SecretMissing");
        assert_eq!(r.paused.as_deref(), Some("paused by me"));
        let table = table(&[r], true);
        assert!(table.contains("ClearingAdapter"), "{table}");
        assert!(table.contains("    paused: paused by me"), "{table}");
        assert!(
            table.contains("    Secret partner-creds not found: create it"),
            "{table}"
        );
    }

    #[test]
    fn a_resource_never_reconciled_is_unknown_and_a_ready_one_has_no_advice() {
        let r = row(&kind(), "payments".into(), "new".into(), &Value::Null, None);
        assert_eq!(r.ready, "Unknown");
        let ready =
            json!({"conditions": [{"type": "Ready", "status": "True", "message": "all good"}]});
        let r = row(&kind(), "payments".into(), "card".into(), &ready, None);
        let table = table(&[r], false);
        assert!(
            !table.contains("all good") && !table.contains("payments"),
            "{table}"
        );
    }
}
