//! Observe: what the pass reads before it builds anything — the Secrets the spec names,
//! and the service's Deployments as the rollout sees them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::{Resource, ResourceExt};
use operator_core::autoscaling::{HeldReplicas, held_replicas};
use operator_core::{FieldError, Result, namespace_of};

use super::Ctx;
use crate::crd::{PaymentService, Revision};
use crate::resources::{self, External};
use crate::rollout::DeploymentState;

/// What the pods depend on outside the spec: the TLS Secret's version. A missing Secret is
/// the user's to fix (the pods could not start), returned as a field error.
pub(super) async fn external_inputs(
    ps: &PaymentService,
    ctx: &Ctx,
) -> Result<std::result::Result<External, FieldError>> {
    let Some(secret) = ps.spec.tls_secret() else {
        return Ok(Ok(External::default()));
    };
    match ctx
        .api_beside::<Secret, _>(ps)
        .get_metadata_opt(secret)
        .await?
    {
        Some(meta) => Ok(Ok(External {
            tls_secret_version: meta.metadata.resource_version,
        })),
        None => Ok(Err(FieldError::new(
            "spec.security.tls.secretName",
            format!(
                "Secret {secret:?} does not exist in namespace {:?} yet; nothing is deployed until it does (create it, type kubernetes.io/tls, or name an existing one)",
                namespace_of(ps)
            ),
        ))),
    }
}

/// The service's Deployments: what the rollout sees, and the `replicas` this operator's
/// apply holds on them (from their managed fields).
pub(super) struct ObservedDeployments {
    pub(super) states: BTreeMap<String, DeploymentState>,
    pub(super) replicas_held: BTreeMap<String, HeldReplicas>,
}

/// One GET per Deployment the service has (one, or two during a rollout), named by the
/// child cache: a LIST by label would cost the API server a scan of the namespace.
pub(super) async fn observe_deployments(
    ps: &PaymentService,
    ctx: &Ctx,
) -> Result<ObservedDeployments> {
    let uid = ps.meta().uid.clone().unwrap_or_default();
    let deployments = ctx.api_beside::<Deployment, _>(ps);
    let mut ours = Vec::new();
    for name in ctx.children.of::<Deployment>()?.names(ps).await? {
        if let Some(d) = deployments.get_opt(&name).await?
            && d.owner_references().iter().any(|o| o.uid == uid)
        {
            ours.push(d);
        }
    }
    let mut states = BTreeMap::new();
    let mut replicas_held = BTreeMap::new();
    for d in &ours {
        let state = deployment_state(d);
        if let Some(held) = held_replicas(d, ctx.identity.manager, state.replicas) {
            replicas_held.insert(d.name_any(), held);
        }
        states.insert(d.name_any(), state);
    }
    Ok(ObservedDeployments {
        states,
        replicas_held,
    })
}

/// What a rollout needs to know about one Deployment.
pub fn deployment_state(d: &Deployment) -> DeploymentState {
    let spec = d.spec.clone().unwrap_or_default();
    let template = spec.template;
    let version = template
        .metadata
        .and_then(|m| m.labels)
        .and_then(|l| l.get("version").cloned());
    let image = template.spec.and_then(|p| {
        p.containers
            .into_iter()
            .find(|c| c.name == resources::deployment::CONTAINER)
            .and_then(|c| c.image)
    });
    let status = d.status.clone().unwrap_or_default();
    DeploymentState {
        revision: version
            .zip(image)
            .map(|(version, image)| Revision { version, image }),
        generation: d.metadata.generation.unwrap_or(0),
        observed_generation: status.observed_generation.unwrap_or(0),
        replicas: spec.replicas.unwrap_or(1),
        updated_replicas: status.updated_replicas.unwrap_or(0),
        available_replicas: status.available_replicas.unwrap_or(0),
        deadline_exceeded: status.conditions.iter().flatten().any(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        }),
    }
}
