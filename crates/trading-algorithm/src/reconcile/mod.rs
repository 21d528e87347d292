//! The reconcile loop: fetch → validate → assess risk → build children → apply and prune →
//! status from what was applied; and on deletion, a graceful stop before the finalizer goes.

mod apply;
mod cleanup;
mod events;
mod observe;
mod status;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use operator_core::builder::WorkloadDefaults;
use operator_core::error::set_not_ready;
use operator_core::finalizer::with_finalizer;
use operator_core::{Context, Result};

use crate::crd::{Phase, TradingAlgorithm};
use crate::metrics::TradingMetrics;
use crate::{resources, risk, validate};

use apply::apply_children;
use cleanup::stop_trading;
use events::announce;
pub use status::observed_status;

/// The finalizer seed 002 names: trading stops gracefully before the resource goes.
pub const FINALIZER: &str = "fintech.io/trading-algorithm-cleanup";

/// How often a graceful stop looks again while pods are still stopping.
const STOP_POLL: Duration = Duration::from_secs(2);

/// The operator's own part of the reconcile context.
#[derive(Clone, Debug)]
pub struct TradingOperator {
    /// The algorithms' reports (see `report`).
    pub reports: Store<ConfigMap>,
    pub defaults: WorkloadDefaults,
    pub metrics: TradingMetrics,
    /// How long a deletion waits for pods to stop before it goes ahead anyway.
    pub stop_timeout: Duration,
    /// The clock (tests move it to the next trading day).
    pub now: operator_core::Clock,
}

type Ctx = Arc<Context<TradingOperator>>;

pub async fn reconcile(ta: Arc<TradingAlgorithm>, ctx: Ctx) -> Result<Action> {
    let tas = ctx.api_beside::<TradingAlgorithm, _>(&*ta);
    with_finalizer(
        &tas,
        FINALIZER,
        ta,
        |ta| apply(ta, ctx.clone()),
        |ta, deletion| stop_trading(ta, deletion, ctx.clone()),
    )
    .await
}

async fn apply(ta: Arc<TradingAlgorithm>, ctx: Ctx) -> Result<Action> {
    let op = &ctx.operator;
    if ctx.status_writes.is_stale(&*ta) {
        return Ok(ctx.resync());
    }
    let now = (op.now)();

    let errors = validate::validate(&ta.name_any(), &ta.spec);
    let checked = ctx.check_spec(&*ta, crate::ANNOTATIONS, errors, Phase::Error, now);
    if let Some(refused) = checked.await {
        return refused;
    }

    let (report, report_error) = observe::report(&ta, &ctx).await;
    let assessment = risk::assess(&ta, report.as_ref(), now);
    let state = &assessment.state;
    let desired = resources::desired_children(&ta, &op.defaults, state.is_stopped());
    let changes = apply_children(&ta, &ctx, desired).await?;
    let refusal = changes.refusal();

    let deployment_status = observe::deployment_status(&ta, &ctx).await?;
    let mut status = observed_status(
        &ta,
        deployment_status.as_ref(),
        &assessment,
        report.as_ref(),
        report_error.as_deref(),
        changes.any(),
        now,
    );
    if let Some(refusal) = &refusal {
        set_not_ready(&mut status.conditions, refusal, ta.meta().generation, now);
    }
    announce(&ta, &ctx, &assessment, &changes).await;
    ctx.write_status(&*ta, &status).await?;
    op.metrics.observe(&ta, report.as_ref(), state);
    match refusal {
        Some(refusal) => Err(refusal),
        None => Ok(ctx.resync()),
    }
}
