//! Apply and prune: the routing table before the pods that read it, then the served
//! workload (the autoscaler's hand-over before a Deployment leaves its replicas to it).

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
    pass.apply(desired.config_map).await?;
    let monitor = pass
        .apply_served(desired.workload, workload.held_replicas.as_ref())
        .await?;
    Ok((pass.finish().await?, monitor))
}
