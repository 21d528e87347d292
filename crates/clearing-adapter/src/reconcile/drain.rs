//! Seed 001's graceful shutdown, before the finalizer goes: stop new payments by scaling the
//! Deployment to zero (its autoscaler and disruption budget go first, so nothing scales it
//! back), wait for the pods to finish their in-flight payments (each has the drain timeout as
//! its grace period), and release once they are gone — or once `drainTimeout` has passed
//! since the deletion, with a Warning event naming the pods still running. When the whole
//! namespace goes, nothing is drained: everything in it goes, and the finalizer is released.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use operator_core::Result;
use operator_core::drain::Drain;
use operator_core::finalizer::{Cleanup, Deletion};

use super::{Ctx, observe};
use crate::crd::{ClearingAdapter, DRAIN_TIMEOUT_SECONDS, Phase};
use crate::partners;
use crate::resources::{self, Inputs};

/// How often a drain looks at the pods again.
const DRAIN_POLL: Duration = Duration::from_secs(2);

/// The bound of a drain whose `drainTimeout` is unreadable: the field's default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(DRAIN_TIMEOUT_SECONDS as u64);

pub(super) async fn drain(
    ca: Arc<ClearingAdapter>,
    deletion: Deletion,
    ctx: Ctx,
) -> Result<Cleanup> {
    let op = &ctx.operator;
    let now = ctx.now();
    op.last_reads.forget(&ca);
    let Some(drain) = Drain::begin(&*ca, deletion, &ca.spec.drain_timeout, DEFAULT_TIMEOUT, now)
    else {
        return Ok(Cleanup::Done);
    };

    let workload = observe::workload(&ca, &ctx).await?;
    tracing::info!(
        adapter = %ca.name_any(),
        pods = workload.current_replicas,
        deployment = workload.exists,
        waited_seconds = drain.elapsed().as_secs(),
        "draining before deletion"
    );
    let running = (workload.exists && workload.current_replicas > 0)
        .then(|| format!("{} adapter pod(s)", workload.current_replicas));
    if running.is_none() {
        let mut status = ca.status.clone().unwrap_or_default();
        status.phase = Some(Phase::Succeeded);
        status.replicas = 0;
        status.ready_replicas = 0;
        ctx.write_status(&*ca, &status).await?;
    }
    let finished = "every adapter pod finished its in-flight payments and stopped";
    let advice = "their in-flight payments may need reconciling with the partners";
    if ctx
        .drain_over(&*ca, &drain, running.as_deref(), finished, advice)
        .await
    {
        return Ok(Cleanup::Done);
    }

    // Stop new payments: no autoscaler or budget to undo the scale-down, then zero pods.
    ctx.children
        .of::<HorizontalPodAutoscaler>()?
        .prune(&*ca, &BTreeSet::new())
        .await?;
    ctx.children
        .of::<PodDisruptionBudget>()?
        .prune(&*ca, &BTreeSet::new())
        .await?;
    let previous = ca.recorded_partners();
    let by_hand = partners::drained_by_hand(&ca);
    let plan = partners::plan(&ca.spec, &previous, &by_hand, None, now);
    // The pods' template stays as it was: only `replicas` changes.
    let inputs = Inputs {
        weights: plan.weights(),
        secret_versions: match observe::secrets(&ca, &ctx).await? {
            Ok(secrets) => secrets.versions,
            Err(_) => Default::default(),
        },
        draining: true,
    };
    let desired = resources::desired_children(&ca, &inputs, ctx.workloads(), &op.image);
    ctx.children
        .of::<k8s_openapi::api::apps::v1::Deployment>()?
        .apply(&*ca, desired.workload.deployment)
        .await?;

    let mut status = ca.status.clone().unwrap_or_default();
    let message = format!(
        "being deleted: draining {} adapter pod(s), waiting up to {} for their in-flight payments",
        workload.current_replicas,
        drain.timeout()
    );
    status.replicas = workload.current_replicas;
    status.ready_replicas = workload.ready_replicas;
    status.phase = Some(Phase::Running);
    ctx.still_draining(&*ca, status, &drain, message, DRAIN_POLL)
        .await
}
