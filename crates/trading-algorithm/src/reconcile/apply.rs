//! Apply and prune: every desired child, in the order they use each other.

use operator_core::{Changes, Result};

use super::Ctx;
use crate::crd::TradingAlgorithm;
use crate::resources::DesiredChildren;

pub(super) async fn apply_children(
    ta: &TradingAlgorithm,
    ctx: &Ctx,
    desired: DesiredChildren,
) -> Result<Changes> {
    let mut pass = ctx.children.pass(ta);
    pass.apply(desired.config).await?;
    pass.apply(desired.deployment).await?;
    pass.apply(desired.service).await?;
    pass.apply(desired.network_policy).await?;
    // Stopped: no autoscaler, which would scale the algorithm back up; prune removes it.
    if let Some(hpa) = desired.hpa {
        pass.apply(hpa).await?;
    }
    pass.finish().await
}
