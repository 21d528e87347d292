//! Apply and prune: the definitions and the identity before the pods that read and use
//! them, the autoscaler's hand-over before the Deployment leaves its replicas to it.

use k8s_openapi::api::apps::v1::Deployment;
use operator_core::autoscaling::hand_replicas_to_autoscaler;
use operator_core::{Changes, OptionalChild, Result};

use super::{Ctx, Observed};
use crate::crd::SagaOrchestrator;
use crate::resources::DesiredChildren;

pub(super) async fn apply_children(
    so: &SagaOrchestrator,
    ctx: &Ctx,
    desired: DesiredChildren,
    observed: &Observed,
) -> Result<(Changes, OptionalChild)> {
    let mut pass = ctx.children.pass(so);
    // The definitions and the identity before the pods that read and use them.
    pass.apply(desired.sagas).await?;
    pass.apply(desired.in_flight).await?;
    pass.apply(desired.service_account).await?;
    pass.apply(desired.role).await?;
    pass.apply(desired.role_binding).await?;
    let deployments = ctx.api_beside::<Deployment, _>(so);
    let owns = observed.operator_owns_replicas;
    let manager = ctx.identity.manager;
    hand_replicas_to_autoscaler(
        &deployments,
        manager,
        &desired.deployment,
        owns,
        observed.replicas,
    )
    .await?;
    pass.apply(desired.deployment).await?;
    pass.apply(desired.service).await?;
    pass.apply(desired.network_policy).await?;
    if let Some(hpa) = desired.hpa {
        pass.apply(hpa).await?;
    }
    if let Some(pdb) = desired.pdb {
        pass.apply(pdb).await?;
    }
    let monitor = pass.apply_optional(desired.service_monitor).await?;
    Ok((pass.finish().await?, monitor))
}
