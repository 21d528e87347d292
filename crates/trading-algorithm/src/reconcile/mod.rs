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
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use operator_core::{Context, PassStart, Result};

use crate::crd::{Phase, TradingAlgorithm};
use crate::metrics::TradingMetrics;
use crate::{resources, risk};

use apply::apply_children;
use cleanup::stop_trading;
use events::announce;
pub use status::observed_status;

/// The finalizer seed 002 names: trading stops gracefully before the resource goes.
pub const FINALIZER: &str = "fintech.io/trading-algorithm-cleanup";

/// How every pass starts ([`PassStart`]): a spec refused before the algorithm ever ran is
/// `Error`.
const START: PassStart<Phase> = PassStart::new(crate::ANNOTATIONS, Phase::Error);

/// How often a graceful stop looks again while pods are still stopping.
const STOP_POLL: Duration = Duration::from_secs(2);

/// The operator's own part of the reconcile context.
#[derive(Clone, Debug)]
pub struct TradingOperator {
    /// The algorithms' reports (see `report`).
    pub reports: Store<ConfigMap>,
    pub metrics: TradingMetrics,
    /// How long a deletion waits for pods to stop before it goes ahead anyway.
    pub stop_timeout: Duration,
}

type Ctx = Arc<Context<TradingOperator>>;

pub async fn reconcile(ta: Arc<TradingAlgorithm>, ctx: Ctx) -> Result<Action> {
    ctx.finalized_pass(ta, FINALIZER, START, apply, stop_trading)
        .await
}

async fn apply(ta: Arc<TradingAlgorithm>, ctx: Ctx, now: Timestamp) -> Result<Action> {
    let (report, report_error) = observe::report(&ta, &ctx).await;
    let assessment = risk::assess(&ta, report.as_ref(), now);
    let state = &assessment.state;
    let desired = resources::desired_children(&ta, ctx.workloads(), state.is_stopped());
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
    announce(&ta, &ctx, &assessment).await;
    ctx.end_pass(&*ta, &mut status, &changes, now).await?;
    ctx.operator.metrics.observe(&ta, report.as_ref(), state);
    refusal.map_or(Ok(ctx.resync()), Err)
}
