//! Apply and prune: the routing table before the pods that read it, the autoscaler's
//! hand-over before a Deployment leaves its replicas to it.

use k8s_openapi::api::apps::v1::Deployment;
use operator_core::autoscaling::hand_replicas_to_autoscaler;
use operator_core::{Changes, OptionalChild, Result};

use super::{Ctx, Workload};
use crate::crd::ClearingAdapter;
use crate::resources::DesiredChildren;

pub(super) async fn apply_children(
    ca: &ClearingAdapter,
    ctx: &Ctx,
    desired: DesiredChildren,
    workload: &Workload,
) -> Result<(Changes, OptionalChild)> {
    let mut pass = ctx.children.pass(ca);
    // The routing table before the pods that read it.
    pass.apply(desired.config_map).await?;
    let deployments = ctx.api_beside::<Deployment, _>(ca);
    let owns = workload.operator_owns_replicas;
    let manager = ctx.identity.manager;
    hand_replicas_to_autoscaler(
        &deployments,
        manager,
        &desired.deployment,
        owns,
        workload.current_replicas,
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
