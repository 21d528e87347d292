//! Apply and prune the children, then what a pass writes besides them: the history beyond
//! its limits deleted, and the recorded mark on the Jobs whose outcome the status holds.

use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::ObjectRef;
use operator_core::monitoring::PrometheusRule;
use operator_core::{Changes, Result, namespace_of};

use super::{Ctx, RECORDED_ANNOTATION};
use crate::crd::BatchProcessor;
use crate::resources::{jobs, prometheus_rule};
use crate::runs::{self, JobView, RunPlan};

/// Applies the CronJob (held while the operator's own run goes), the Job this pass starts,
/// and the PrometheusRule where alerting is on and the Prometheus Operator is installed.
pub(super) async fn apply_children(
    bp: &BatchProcessor,
    ctx: &Ctx,
    plan: &RunPlan,
) -> Result<Changes> {
    let defaults = ctx.workloads();
    let mut pass = ctx.children.pass(bp);
    pass.apply(jobs::desired_cron_job(bp, defaults, plan.hold_schedule))
        .await?;
    if let Some(start) = &plan.start {
        pass.apply(jobs::desired_run_job(bp, defaults, start))
            .await?;
    }
    if let Some(monitoring) = bp.spec.alerting()
        && ctx.children.served::<PrometheusRule>().await?
    {
        pass.apply(prometheus_rule::desired_alerts(bp, monitoring, defaults))
            .await?;
    }
    pass.finish().await
}

/// Deletes the operator's finished Jobs beyond the history limits (and their pods: a Job is
/// deleted in the background, not orphaning them). Each delete names the UID of the Job the
/// cache holds, so a Job of that name created since by someone else is never deleted.
pub(super) async fn delete_history(bp: &BatchProcessor, ctx: &Ctx, jobs: &[JobView]) -> Result<()> {
    let api = ctx.api_beside::<Job, _>(bp);
    let namespace = namespace_of(bp);
    for name in runs::beyond_history(bp, jobs) {
        let cached = ctx
            .operator
            .jobs
            .get(&ObjectRef::new(&name).within(namespace));
        let Some(uid) = cached.and_then(|j| j.metadata.uid.clone()) else {
            continue;
        };
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(job = %name, namespace, "deleted beyond the history limits")
            }
            // Gone already, or replaced since the cache saw it: nothing of ours to delete.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Marks Jobs whose outcome the status now holds, so no later pass records them again.
pub(super) async fn mark_recorded(
    bp: &BatchProcessor,
    ctx: &Ctx,
    names: Vec<String>,
) -> Result<()> {
    let api = ctx.api_beside::<Job, _>(bp);
    let mark = serde_json::json!({"metadata": {"annotations": {RECORDED_ANNOTATION: "true"}}});
    for name in names {
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&mark))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
