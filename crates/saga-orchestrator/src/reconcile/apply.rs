//! Apply and prune: the definitions and the identity before the pods that read and use
//! them, then the served workload (the autoscaler's hand-over before the Deployment leaves
//! its replicas to it).

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
    pass.apply(desired.sagas).await?;
    pass.apply(desired.in_flight).await?;
    pass.apply(desired.service_account).await?;
    pass.apply(desired.role).await?;
    pass.apply(desired.role_binding).await?;
    let monitor = pass
        .apply_served(desired.workload, observed.held_replicas.as_ref())
        .await?;
    Ok((pass.finish().await?, monitor))
}
