//! Handing a Deployment's `replicas` from the operator to a HorizontalPodAutoscaler.
//!
//! An operator that stops setting `replicas` (autoscaling switched on, or the autoscaled
//! Deployment changed) drops a field its apply alone owns, and server-side apply deletes it:
//! the Deployment falls back to one replica until the autoscaler reacts. So a second field
//! manager first claims `replicas` at its current value; the field then stays until the
//! autoscaler changes it (server-side apply's documented hand-over).

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::error::{Error, Result};

/// The `replicas` the operator's own apply holds on one Deployment, as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldReplicas {
    /// The Deployment's UID: the hand-over claims the field on this object only, never on
    /// another created under the same name since it was observed.
    pub uid: String,
    /// How many it has.
    pub current: i32,
}

/// What `manager`'s apply holds of `d`'s `spec.replicas` (now `current`): `None` when its
/// apply does not own them.
pub fn held_replicas(d: &Deployment, manager: &str, current: i32) -> Option<HeldReplicas> {
    let applies = d.managed_fields().iter().any(|m| {
        m.manager.as_deref() == Some(manager)
            && m.operation.as_deref() == Some("Apply")
            && m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:spec"].get("f:replicas").is_some())
    });
    if !applies {
        return None;
    }
    Some(HeldReplicas {
        uid: d.uid()?,
        current,
    })
}

/// Before `desired` is applied: when it leaves `replicas` to an autoscaler while the
/// operator's own apply still holds them (`held`, see [`held_replicas`]), claims them at
/// their current value for `<manager>-handover`, on the observed Deployment only (its UID
/// is a precondition), so the apply that leaves the field out does not drop it. Otherwise
/// nothing is sent.
pub async fn hand_replicas_to_autoscaler(
    deployments: &Api<Deployment>,
    manager: &str,
    desired: &Deployment,
    held: Option<&HeldReplicas>,
) -> Result<()> {
    let autoscaled = desired.spec.as_ref().is_some_and(|s| s.replicas.is_none());
    let Some(held) = held.filter(|_| autoscaled) else {
        return Ok(());
    };
    let name = desired.name_any();
    let claim = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "uid": held.uid},
        "spec": {"replicas": held.current},
    });
    let handover = format!("{manager}-handover");
    deployments
        .patch(&name, &PatchParams::apply(&handover), &Patch::Apply(&claim))
        .await
        .map_err(|e| Error::from_child_write("Deployment", &name, e))?;
    Ok(())
}
