//! Observe: what the pass reads before it builds anything — the adapter's Deployment and
//! autoscaler (its pods and load), and the Secrets the spec references.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use operator_core::apply::get_controlled;
use operator_core::autoscaling::{HeldReplicas, held_replicas};
use operator_core::conditions::workload_condition;
use operator_core::{FieldError, Result, namespace_of};

use super::Ctx;
use crate::crd::ClearingAdapter;
use crate::validate::Load;

/// The adapter's pods and load, as its own Deployment and autoscaler report them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Workload {
    /// The Deployment exists and is the adapter's.
    pub exists: bool,
    pub current_replicas: i32,
    pub ready_replicas: i32,
    pub available: bool,
    /// Why the Deployment stopped progressing, if it did (`ProgressDeadlineExceeded`).
    pub stalled: Option<String>,
    /// The pod floor last applied: the autoscaler's `minReplicas`, or the Deployment's
    /// `replicas` without one; `None` before the first apply.
    pub applied_floor: Option<i32>,
    pub load: Load,
    /// The `replicas` the operator's apply holds (to hand over when autoscaling starts).
    pub held_replicas: Option<HeldReplicas>,
}

/// The workload as the operator's caches hold it (no request once they do).
pub(super) async fn workload(ca: &ClearingAdapter, ctx: &Ctx) -> Result<Workload> {
    let name = ca.name_any();
    let deployment = ctx.controlled::<Deployment, _>(ca, &name).await?;
    let hpa = ctx
        .controlled::<HorizontalPodAutoscaler, _>(ca, &name)
        .await?;
    Ok(workload_from(deployment, hpa))
}

/// [`workload`] with a bare client: the admission webhook reads the load this way, fresh
/// from the API server.
pub(crate) async fn workload_of(ca: &ClearingAdapter, client: &kube::Client) -> Result<Workload> {
    let name = ca.name_any();
    let deployment = get_controlled::<Deployment, _>(client, ca, &name).await?;
    let hpa = get_controlled::<HorizontalPodAutoscaler, _>(client, ca, &name).await?;
    Ok(workload_from(deployment, hpa))
}

fn workload_from(deployment: Option<Deployment>, hpa: Option<HorizontalPodAutoscaler>) -> Workload {
    let Some(deployment) = deployment else {
        return Workload::default();
    };
    let status = deployment.status.clone().unwrap_or_default();
    let condition = |type_| workload_condition(status.conditions.as_ref(), type_).cloned();
    let stalled = condition("Progressing")
        .filter(|c| c.status == "False")
        .map(|c| c.message.unwrap_or(c.reason.unwrap_or_default()));
    let cpu_utilization = hpa.as_ref().and_then(|h| {
        let target = h
            .spec
            .as_ref()?
            .metrics
            .iter()
            .flatten()
            .filter_map(|m| m.resource.as_ref())
            .find(|r| r.name == "cpu")?
            .target
            .average_utilization?;
        let current = h
            .status
            .as_ref()?
            .current_metrics
            .iter()
            .flatten()
            .filter_map(|m| m.resource.as_ref())
            .find(|r| r.name == "cpu")?
            .current
            .average_utilization?;
        Some((current, target))
    });
    let applied_floor = match &hpa {
        Some(h) => h.spec.as_ref().and_then(|s| s.min_replicas),
        None => deployment.spec.as_ref().and_then(|s| s.replicas),
    };
    let current_replicas = status.replicas.unwrap_or_default();
    Workload {
        exists: true,
        current_replicas,
        ready_replicas: status.ready_replicas.unwrap_or_default(),
        available: condition("Available").is_some_and(|c| c.status == "True"),
        stalled,
        applied_floor,
        load: Load {
            cpu_utilization,
            autoscaler_replicas: hpa
                .as_ref()
                .and_then(|h| h.status.as_ref())
                .map(|s| s.desired_replicas),
        },
        held_replicas: held_replicas(&deployment, crate::IDENTITY.manager, current_replicas),
    }
}

/// The referenced Secrets: each one's resourceVersion (for the pods' config hash) and the
/// keys the spec names (for the partner checks). Their content never leaves memory.
#[derive(Clone, Default)]
pub struct Secrets {
    pub versions: BTreeMap<String, String>,
    data: BTreeMap<(String, String), Vec<u8>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("versions", &self.versions)
            .finish_non_exhaustive()
    }
}

impl Secrets {
    pub fn key(&self, secret: &str, key: &str) -> Option<&[u8]> {
        self.data
            .get(&(secret.to_string(), key.to_string()))
            .map(Vec::as_slice)
    }
}

/// Every Secret key the spec references; the first missing one is returned as the field
/// that names it, for the user to create (the pods could not start without it).
pub(super) async fn secrets(
    ca: &ClearingAdapter,
    ctx: &Ctx,
) -> Result<std::result::Result<Secrets, Vec<FieldError>>> {
    let api = ctx.api_beside::<Secret, _>(ca);
    let namespace = namespace_of(ca);
    let mut found: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    let mut secrets = Secrets::default();
    // Every Secret that is missing or lacks its key is named, so one fix covers them all.
    let mut missing = Vec::new();
    for used in ca.spec.secret_uses() {
        let name = &used.secret.name;
        if !found.contains_key(name) {
            found.insert(name.clone(), api.get_opt(name).await?);
        }
        let Some(secret) = found.get(name).and_then(Option::as_ref) else {
            missing.push(FieldError::new(
                &used.field,
                format!(
                    "Secret {name} does not exist in namespace {namespace}: create it (the adapter's pods mount it and cannot start without it)"
                ),
            ));
            continue;
        };
        let Some(value) = secret.data.as_ref().and_then(|d| d.get(&used.secret.key)) else {
            missing.push(FieldError::new(
                &used.field,
                format!(
                    "Secret {name} has no key \"{}\": add it, or name the key that holds the value",
                    used.secret.key
                ),
            ));
            continue;
        };
        secrets
            .versions
            .insert(name.clone(), secret.resource_version().unwrap_or_default());
        secrets
            .data
            .insert((name.clone(), used.secret.key.clone()), value.0.clone());
    }
    // A client certificate's two keys in one missing Secret are one thing to fix.
    missing.dedup();
    Ok(if missing.is_empty() {
        Ok(secrets)
    } else {
        Err(missing)
    })
}
