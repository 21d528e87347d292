//! What a pass reads besides the resource: the algorithm's report and its Deployment's status.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use kube::ResourceExt;
use operator_core::Result;

use super::Ctx;
use crate::crd::TradingAlgorithm;
use crate::report::{self, Report};
use crate::resources::{self, deployment_name};

/// The algorithm's report, and what is wrong with it when it cannot be read (said once per
/// pass in a Warning event `InvalidReport`: the report is ignored, never half-read).
pub(super) async fn report(ta: &TradingAlgorithm, ctx: &Ctx) -> (Option<Report>, Option<String>) {
    match report::lookup(&ctx.operator.reports, ta) {
        Some(Ok(report)) => (Some(report), None),
        Some(Err(why)) => {
            let note = format!(
                "{} is ignored: {why}",
                resources::report_name(&ta.name_any())
            );
            ctx.events
                .warning(
                    ta,
                    operator_core::reason!("InvalidReport"),
                    "ReadReport",
                    note,
                )
                .await;
            (None, Some(why))
        }
        None => (None, None),
    }
}

/// The status of the algorithm's Deployment. Only a Deployment this algorithm controls says
/// how it trades: one of that name that is someone else's (a refused child) is not read.
pub(super) async fn deployment_status(
    ta: &TradingAlgorithm,
    ctx: &Ctx,
) -> Result<Option<DeploymentStatus>> {
    let name = deployment_name(&ta.name_any());
    let deployment = ctx.controlled::<Deployment, _>(ta, &name).await?;
    Ok(deployment.and_then(|d| d.status))
}
