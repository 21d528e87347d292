//! Before a TradingAlgorithm goes: stop trading gracefully, then keep the final figures.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use operator_core::finalizer::{Cleanup, Deletion};
use operator_core::{Result, namespace_of};
use serde_json::json;

use super::{Ctx, STOP_POLL};
use crate::crd::{FinalReport, TradingAlgorithm, TradingAlgorithmStatus};
use crate::resources::deployment_name;

/// Removes the autoscaler and scales to zero; `Some(wait)` while pods are still stopping
/// (up to `stop_timeout`, then it goes ahead with a warning).
async fn wind_down(ta: &TradingAlgorithm, ctx: &Ctx) -> Result<Option<Cleanup>> {
    let op = &ctx.operator;
    let namespace = namespace_of(ta);
    ctx.children
        .of::<HorizontalPodAutoscaler>()?
        .prune(ta, &BTreeSet::new())
        .await?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let name = deployment_name(&ta.name_any());
    // Only a Deployment this algorithm controls is scaled: one of that name that is someone
    // else's (refused as a conflict) is never touched.
    let ours = ctx.controlled::<Deployment, _>(ta, &name).await?;
    let remaining = match ours {
        None => 0,
        Some(d) => {
            if d.spec.as_ref().and_then(|s| s.replicas) != Some(0) {
                // The UID in the patch makes the server refuse it should the object have been
                // replaced by someone else's since it was read.
                let patch = json!({"metadata": {"uid": d.metadata.uid}, "spec": {"replicas": 0}});
                deployments
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                ctx.events
                    .normal(
                        ta,
                        operator_core::reason!("Stopping"),
                        "Scale",
                        "scaling to zero before deletion",
                    )
                    .await;
            }
            d.status.and_then(|s| s.replicas).unwrap_or(0)
        }
    };
    let deleting_since = ta
        .meta()
        .deletion_timestamp
        .as_ref()
        .map_or(ctx.now(), |t| t.0);
    let waited = ctx.now().duration_since(deleting_since);
    if remaining > 0 {
        if waited.as_secs_f64() < op.stop_timeout.as_secs_f64() {
            return Ok(Some(Cleanup::Waiting(STOP_POLL)));
        }
        ctx.events
            .warning(
                ta,
                operator_core::reason!("GracefulStopTimedOut"),
                "Delete",
                format!(
                    "{remaining} pods still running after {:?}; deleting anyway",
                    op.stop_timeout
                ),
            )
            .await;
    }
    Ok(None)
}

/// Stops trading before the resource goes: removes the autoscaler, scales the Deployment to
/// zero, waits (up to `stop_timeout`) for its pods to stop, then records the final trades and
/// P&L. The children themselves are garbage-collected through owner references. When the
/// whole namespace goes, its pods go with it: only the record is kept.
pub(super) async fn stop_trading(
    ta: Arc<TradingAlgorithm>,
    deletion: Deletion,
    ctx: Ctx,
) -> Result<Cleanup> {
    // A pass that finds the final report already written (a cached copy from before the
    // release, or a restart) has nothing left to do but release.
    let status = ta.status.clone().unwrap_or_default();
    if status.final_report.is_none() {
        if deletion == Deletion::Resource
            && let Some(waiting) = wind_down(&ta, &ctx).await?
        {
            return Ok(waiting);
        }
        // The final figures are the audit record of this algorithm: kept in its status and
        // the operator's log, which a namespace being deleted still accepts, then announced.
        let report = FinalReport {
            total_trades: status.total_trades.unwrap_or(0),
            daily_pnl: status.daily_pnl.unwrap_or(0.0),
            stopped_at: Time(ctx.now()),
        };
        let next = TradingAlgorithmStatus {
            final_report: Some(report.clone()),
            ..status
        };
        ctx.write_status(&*ta, &next).await?;
        ctx.events
            .record(
                &*ta,
                operator_core::reason!("TradingStopped"),
                "Delete",
                format!(
                    "final totalTrades {} dailyPnL {}",
                    report.total_trades, report.daily_pnl
                ),
            )
            .await;
    }
    Ok(Cleanup::Done)
}
