//! Apply and prune: every desired child, with the hand-over of `replicas` to an autoscaler
//! and the ServiceMonitor only where the Prometheus Operator is installed.

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use operator_core::autoscaling::hand_replicas_to_autoscaler;
use operator_core::{Changes, Foreign, OptionalChild, Result};

use super::Ctx;
use super::observe::ObservedDeployments;
use crate::crd::PaymentService;
use crate::resources::DesiredChildren;
use crate::rollout::RolloutPlan;

pub(super) async fn apply_children(
    ps: &PaymentService,
    ctx: &Ctx,
    desired: DesiredChildren,
    plan: &RolloutPlan,
    observed: &ObservedDeployments,
) -> Result<(Changes, OptionalChild)> {
    let mut pass = ctx.children.pass(ps);
    if let Some(sa) = desired.service_account {
        // The account the user names: created when missing, used as it is when it exists.
        pass.apply_with(sa, Foreign::Use).await?;
    }
    // A colour or canary the rollout is still retiring stays until it has switched away.
    for retiring in &plan.retiring {
        pass.keep::<Deployment>(retiring.clone());
    }
    let deployments = ctx.api_beside::<Deployment, _>(ps);
    for d in desired.deployments {
        let name = d.name_any();
        let held = observed.replicas_held.get(&name);
        hand_replicas_to_autoscaler(&deployments, ctx.identity.manager, &d, held).await?;
        pass.apply(d).await?;
    }
    pass.apply(desired.service).await?;
    if let Some(preview) = desired.preview_service {
        pass.apply(preview).await?;
    }
    pass.apply(desired.network_policy).await?;
    if let Some(hpa) = desired.hpa {
        pass.apply(hpa).await?;
    }
    if let Some(pdb) = desired.pdb {
        pass.apply(pdb).await?;
    }
    if let Some(b) = desired.backup {
        // The claim holds the exports: its kind is never pruned.
        pass.apply(b.volume).await?;
        pass.apply(b.service_account).await?;
        pass.apply(b.role).await?;
        pass.apply(b.role_binding).await?;
        pass.apply(b.cron_job).await?;
    }
    let monitor = pass.apply_optional(desired.service_monitor).await?;
    // Everything wanted is in place (the Service has switched) before the rest is pruned.
    Ok((pass.finish().await?, monitor))
}
