//! `kubectl payments why KIND/NAME`: one resource's conditions, its recent events and its
//! children's state, ending in one sentence of advice.

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use operator_core::pause::PAUSED;
use serde_json::Value;

use crate::CliError;
use crate::kinds::Kind;
use crate::status::{condition, event_time};

/// The kinds an operator of the product creates for its resources, looked through for the
/// ones this resource controls.
const CHILD_KINDS: [(&str, &str, &str, &str); 12] = [
    ("apps", "v1", "Deployment", "deployments"),
    ("", "v1", "Service", "services"),
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "ServiceAccount", "serviceaccounts"),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
    ),
    ("batch", "v1", "CronJob", "cronjobs"),
    ("batch", "v1", "Job", "jobs"),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
    ),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
    ),
];

/// How many of the newest events are shown.
const EVENTS: usize = 10;

/// The account of one resource, as lines of text.
pub async fn explain(
    client: &Client,
    kind: &Kind,
    namespace: &str,
    name: &str,
) -> Result<String, CliError> {
    let object = kind
        .api(client, Some(namespace))
        .get_opt(name)
        .await?
        .ok_or_else(|| CliError::NotFound {
            kind: kind.resource.kind.clone(),
            namespace: namespace.into(),
            name: name.into(),
        })?;
    let uid = object.metadata.uid.clone().unwrap_or_default();
    let status = &object.data["status"];
    let mut out = format!("{} {namespace}/{name}", kind.resource.kind);
    if let Some(phase) = status["phase"].as_str() {
        out.push_str(&format!(", phase {phase}"));
    }
    out.push('\n');
    let conditions: Vec<String> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={} {}: {}",
                text(&c["type"]),
                text(&c["status"]),
                text(&c["reason"]),
                text(&c["message"])
            )
        })
        .collect();
    section(&mut out, "conditions", &conditions);
    section(
        &mut out,
        "recent events",
        &events(client, namespace, &uid).await?,
    );
    section(
        &mut out,
        "children",
        &children(client, namespace, &uid).await?,
    );
    out.push('\n');
    out.push_str(&advice(status));
    out.push('\n');
    Ok(out)
}

/// A heading and its lines, or `(none)`.
fn section(out: &mut String, heading: &str, lines: &[String]) {
    out.push_str(&format!("\n{heading}:\n"));
    if lines.is_empty() {
        out.push_str("  (none)\n");
    }
    for line in lines {
        out.push_str(&format!("  {line}\n"));
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// One sentence: what the status says to do.
pub fn advice(status: &Value) -> String {
    let condition = |type_: &str| condition(status, type_);
    if let Some(paused) = condition(PAUSED).filter(|c| c["status"] == "True") {
        return format!("Paused: {}.", text(&paused["message"]));
    }
    match condition("Ready") {
        None => "Not reconciled yet: is its operator running and leading?".into(),
        Some(c) if c["status"] == "True" => "Ready: nothing to do.".into(),
        Some(c) => format!(
            "Not ready ({}): {}.",
            text(&c["reason"]),
            text(&c["message"])
        ),
    }
}

/// The newest events about the object, newest last: `time type reason: note`.
async fn events(client: &Client, namespace: &str, uid: &str) -> Result<Vec<String>, CliError> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut about: Vec<(Option<Timestamp>, String)> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(uid))
        .map(|e| {
            let at = event_time(&e);
            let when = at.map(|t| t.to_string()).unwrap_or_default();
            let line = format!(
                "{when} {} {}: {}",
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default()
            );
            (at, line)
        })
        .collect();
    about.sort();
    let skip = about.len().saturating_sub(EVENTS);
    Ok(about.into_iter().skip(skip).map(|(_, line)| line).collect())
}

/// Each child the object controls, with its state: `Kind/name: state`.
async fn children(client: &Client, namespace: &str, uid: &str) -> Result<Vec<String>, CliError> {
    let mut lines = Vec::new();
    for (group, version, kind, plural) in CHILD_KINDS {
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let items = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            // Kinds the caller may not list are left out, and said.
            Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => {
                lines.push(format!("{kind}: not listed ({})", s.message));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for child in items {
            let controlled = child
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == uid && r.controller == Some(true));
            if controlled {
                let name = child.metadata.name.clone().unwrap_or_default();
                lines.push(format!("{kind}/{name}: {}", state(kind, &child.data)));
            }
        }
    }
    Ok(lines)
}

/// What a child's status says, in a few words.
pub fn state(kind: &str, child: &Value) -> String {
    let status = &child["status"];
    let n = |v: &Value| v.as_i64().unwrap_or_default();
    match kind {
        "Deployment" => format!(
            "{}/{} ready, {} updated",
            n(&status["readyReplicas"]),
            n(&child["spec"]["replicas"]),
            n(&status["updatedReplicas"])
        ),
        "HorizontalPodAutoscaler" => format!(
            "{} current, {} desired (min {}, max {})",
            n(&status["currentReplicas"]),
            n(&status["desiredReplicas"]),
            n(&child["spec"]["minReplicas"]),
            n(&child["spec"]["maxReplicas"])
        ),
        "CronJob" => match status["lastScheduleTime"].as_str() {
            Some(at) => format!("last scheduled {at}"),
            None => "not scheduled yet".into(),
        },
        "Job" => format!(
            "{} active, {} succeeded, {} failed",
            n(&status["active"]),
            n(&status["succeeded"]),
            n(&status["failed"])
        ),
        "PersistentVolumeClaim" => status["phase"].as_str().unwrap_or("Pending").to_string(),
        _ => "present".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_advice_is_the_pause_then_what_ready_says() {
        let paused = json!({"conditions": [
            {"type": "Ready", "status": "False", "reason": "SecretMissing", "message": "create it"},
            {"type": "Paused", "status": "True", "message": "paused by me"}]});
        assert_eq!(advice(&paused), "Paused: paused by me.");
        let failing = json!({"conditions": [
            {"type": "Ready", "status": "False", "reason": "SecretMissing", "message": "create Secret x"}]});
        assert_eq!(
            advice(&failing),
            "Not ready (SecretMissing): create Secret x."
        );
        let ready = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        assert_eq!(advice(&ready), "Ready: nothing to do.");
        assert!(advice(&Value::Null).starts_with("Not reconciled yet"));
    }

    #[test]
    fn a_childs_state_is_read_from_its_status() {
        let deployment =
            json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 2, "updatedReplicas": 3}});
        assert_eq!(state("Deployment", &deployment), "2/3 ready, 3 updated");
        let cronjob = json!({"status": {}});
        assert_eq!(state("CronJob", &cronjob), "not scheduled yet");
        assert_eq!(state("Service", &json!({})), "present");
    }
}
