//! The reconcile loop: fetch → validate → assess risk → build children → apply and prune →
//! status from what was applied; and on deletion, a graceful stop before the finalizer goes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use operator_core::apply::controlled_by;
use operator_core::conditions::{ConditionStatus, Observed, Reason, set_condition, set_not_ready};
use operator_core::finalizer::{Cleanup, Deletion, with_finalizer};
use operator_core::runtime::config::WorkloadDefaults;
use operator_core::{Changes, Context, Result, namespace_of};
use serde_json::json;

use crate::crd::{FinalReport, Phase, TradingAlgorithm, TradingAlgorithmStatus};
use crate::metrics::TradingMetrics;
use crate::report::{self, Report};
use crate::resources::{self, DesiredChildren, deployment_name};
use crate::risk::{self, Assessment, Resume, TradingState};
use crate::validate;

/// The finalizer seed 002 names: trading stops gracefully before the resource goes.
pub const FINALIZER: &str = "fintech.io/trading-algorithm-cleanup";

/// How often a graceful stop looks again while pods are still stopping.
const STOP_POLL: Duration = Duration::from_secs(2);

/// The operator's own part of the reconcile context.
#[derive(Clone)]
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

impl std::fmt::Debug for TradingOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TradingOperator")
            .field("defaults", &self.defaults)
            .field("stop_timeout", &self.stop_timeout)
            .finish_non_exhaustive()
    }
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

    let mut report_error = None;
    let report = match report::lookup(&op.reports, &ta) {
        Some(Ok(report)) => Some(report),
        Some(Err(why)) => {
            report_error = Some(why.clone());
            ctx.events
                .warning(
                    &*ta,
                    operator_core::reason!("InvalidReport"),
                    "ReadReport",
                    format!(
                        "{} is ignored: {why}",
                        resources::report_name(&ta.name_any())
                    ),
                )
                .await;
            None
        }
        None => None,
    };
    let assessment = risk::assess(&ta, report.as_ref(), now);
    let state = &assessment.state;
    let desired = resources::desired_children(&ta, &op.defaults, state.is_stopped());
    let changes = apply_children(&ta, &ctx, desired).await?;
    let refusal = changes.refusal();

    // Only a Deployment this algorithm controls says how it trades: one of that name that
    // is someone else's (a refused child) is not read.
    let deployment_status = ctx
        .api_beside::<Deployment, _>(&*ta)
        .get_opt(&deployment_name(&ta.name_any()))
        .await?
        .filter(|d| controlled_by(d.meta(), &*ta))
        .and_then(|d| d.status);
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

async fn apply_children(
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

/// Events a human wants in `kubectl describe`: what was created or changed, and every
/// change of the trading state.
async fn announce(ta: &TradingAlgorithm, ctx: &Ctx, assessment: &Assessment, changes: &Changes) {
    let events = &ctx.events;
    events.changes(ta, changes).await;
    match &assessment.resume {
        Resume::Acknowledged(r) => {
            let note = format!(
                "{} acknowledged the halt of {} (since {}, dailyPnL {}): trading resumes, and the guard will not halt again on {}",
                r.resumed_by, r.trading_day, r.halted_since.0, r.daily_pnl, r.trading_day
            );
            events
                .normal(ta, operator_core::reason!("TradingResumed"), "Resume", note)
                .await;
        }
        Resume::Ignored { value, why } => {
            let note = format!(
                "annotation {}={value} is ignored: {why}; the risk guard stays armed. To lift a halt, set the annotation to the halt's status.riskHalt.since",
                risk::RESUME_ANNOTATION
            );
            events
                .warning(ta, operator_core::reason!("ResumeIgnored"), "Resume", note)
                .await;
        }
        Resume::Nothing => {}
    }
    let state = &assessment.state;
    let was_halted = ta
        .status
        .as_ref()
        .and_then(|s| s.risk_halt.as_ref())
        .is_some();
    let was_suspended = ta.status.as_ref().and_then(|s| s.phase) == Some(Phase::Suspended);
    match state {
        TradingState::Halted(halt) if !was_halted => {
            let note = format!(
                "dailyPnL {} breached dailyLossLimit {}: scaled to zero until the next UTC trading day, or until a human acknowledges this halt with annotation {}={}",
                halt.daily_pnl,
                ta.spec.risk_limits.daily_loss_limit,
                risk::RESUME_ANNOTATION,
                halt.since.0
            );
            events
                .warning(
                    ta,
                    operator_core::reason!("RiskLimitBreached"),
                    "Halt",
                    note,
                )
                .await;
        }
        TradingState::Suspended if !was_suspended => {
            events
                .normal(
                    ta,
                    operator_core::reason!("Suspended"),
                    "Scale",
                    "spec.suspend is true: scaled to zero",
                )
                .await;
        }
        TradingState::Trading if was_suspended => {
            events
                .normal(
                    ta,
                    operator_core::reason!("Resumed"),
                    "Scale",
                    "trading resumed",
                )
                .await;
        }
        _ => {}
    }
}

fn ready_condition(phase: Phase, ta: &TradingAlgorithm) -> (ConditionStatus, Reason, String) {
    let min = ta.spec.scaling_policy.min_replicas;
    match phase {
        Phase::Active => (
            ConditionStatus::True,
            operator_core::reason!("TradingActive"),
            format!("at least {min} replicas are ready"),
        ),
        Phase::Scaling => (
            ConditionStatus::False,
            operator_core::reason!("Scaling"),
            "the Deployment's replicas are changing".into(),
        ),
        Phase::Pending => (
            ConditionStatus::False,
            operator_core::reason!("ReplicasNotReady"),
            "no replica is ready yet".into(),
        ),
        Phase::Suspended => (
            ConditionStatus::False,
            operator_core::reason!("Suspended"),
            "trading is stopped".into(),
        ),
        Phase::Error => (
            ConditionStatus::False,
            operator_core::reason!("InvalidSpec"),
            String::new(),
        ),
    }
}

/// The phase from the trading state and what the Deployment reports.
pub fn phase(
    ta: &TradingAlgorithm,
    deployment: Option<&DeploymentStatus>,
    state: &TradingState,
) -> Phase {
    if state.is_stopped() {
        return Phase::Suspended;
    }
    let replicas = deployment.and_then(|d| d.replicas).unwrap_or(0);
    let ready = deployment.and_then(|d| d.ready_replicas).unwrap_or(0);
    if ready == 0 {
        Phase::Pending
    } else if replicas != ready {
        Phase::Scaling
    } else if ready >= ta.spec.scaling_policy.min_replicas {
        Phase::Active
    } else {
        Phase::Scaling
    }
}

/// Status from what was applied and observed. `lastReconciled` moves only when this pass
/// changed something (a child, or the status itself).
pub fn observed_status(
    ta: &TradingAlgorithm,
    deployment: Option<&DeploymentStatus>,
    assessment: &Assessment,
    report: Option<&Report>,
    report_error: Option<&str>,
    children_changed: bool,
    now: Timestamp,
) -> TradingAlgorithmStatus {
    let previous = ta.status.clone().unwrap_or_default();
    let state = &assessment.state;
    let risk_resume = match &assessment.resume {
        Resume::Acknowledged(r) => Some(r.clone()),
        _ => previous.risk_resume.clone(),
    };
    let ignored_resume = match &assessment.resume {
        _ if !ta.annotations().contains_key(risk::RESUME_ANNOTATION) => None,
        Resume::Ignored { value, .. } => Some(value.clone()),
        _ => previous.ignored_resume.clone(),
    };
    let generation = ta.meta().generation;
    let phase = phase(ta, deployment, state);
    let mut conditions = previous.conditions.clone();
    let (status, reason, message) = match state.halt() {
        // A manual suspend and a risk halt both scale to zero; Ready tells them apart.
        Some(h) => (
            ConditionStatus::False,
            operator_core::reason!("RiskHalt"),
            format!(
                "halted for {}: dailyPnL {} breached dailyLossLimit {}",
                h.trading_day, h.daily_pnl, ta.spec.risk_limits.daily_loss_limit
            ),
        ),
        None => ready_condition(phase, ta),
    };
    let ready = Observed {
        type_: "Ready",
        status,
        reason,
        message,
    };
    let breach = match state.halt() {
        Some(h) => Observed {
            type_: "RiskLimitBreached",
            status: ConditionStatus::True,
            reason: operator_core::reason!("DailyLossLimitExceeded"),
            message: format!(
                "dailyPnL {} on {} breached dailyLossLimit {}",
                h.daily_pnl, h.trading_day, ta.spec.risk_limits.daily_loss_limit
            ),
        },
        None => match (
            risk::resumed_over_limit(ta, risk_resume.as_ref(), report, now),
            &risk_resume,
        ) {
            // Trading again by a human's decision, not because the loss recovered: say so.
            (Some(pnl), Some(resume)) => Observed {
                type_: "RiskLimitBreached",
                status: ConditionStatus::True,
                reason: operator_core::reason!("ResumedOverLimit"),
                message: format!(
                    "dailyPnL {pnl} is past dailyLossLimit {}; {} lifted the halt at {} and the guard will not halt again today",
                    ta.spec.risk_limits.daily_loss_limit, resume.resumed_by, resume.resumed_at.0
                ),
            },
            // A report that cannot be read says nothing of today: the last figures stand, and
            // the guard keeps any halt it has.
            _ if report.is_none() && report_error.is_some() => Observed {
                type_: "RiskLimitBreached",
                status: ConditionStatus::Unknown,
                reason: operator_core::reason!("ReportInvalid"),
                message: format!(
                    "today's report {} cannot be read ({}): fix it; the last valid dailyPnL was {}",
                    resources::report_name(&ta.name_any()),
                    report_error.unwrap_or_default(),
                    previous
                        .daily_pnl
                        .map_or_else(|| "never reported".to_string(), |p| p.to_string())
                ),
            },
            _ => Observed {
                type_: "RiskLimitBreached",
                status: ConditionStatus::False,
                reason: operator_core::reason!("WithinLimits"),
                message: match report {
                    Some(r) => format!(
                        "dailyPnL {} is within dailyLossLimit {}",
                        r.daily_pnl, ta.spec.risk_limits.daily_loss_limit
                    ),
                    None => "no report for today yet".into(),
                },
            },
        },
    };
    for observed in [ready, breach] {
        // Reasons here are literals and CamelCase; an error would be a bug caught by tests.
        let _ = set_condition(&mut conditions, observed, generation, now);
    }
    let mut status = TradingAlgorithmStatus {
        phase: Some(phase),
        replicas: Some(deployment.and_then(|d| d.replicas).unwrap_or(0)),
        ready_replicas: Some(deployment.and_then(|d| d.ready_replicas).unwrap_or(0)),
        conditions,
        last_reconciled: previous.last_reconciled.clone(),
        total_trades: report.map(|r| r.total_trades).or(previous.total_trades),
        daily_pnl: report.map(|r| r.daily_pnl).or(previous.daily_pnl),
        observed_generation: generation,
        risk_halt: state.halt().cloned(),
        risk_resume,
        ignored_resume,
        final_report: previous.final_report.clone(),
    };
    if children_changed || status != previous {
        status.last_reconciled = Some(Time(now));
    }
    status
}

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
    let ours = deployments
        .get_opt(&name)
        .await?
        .filter(|d| controlled_by(d.meta(), ta));
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
        .map_or((op.now)(), |t| t.0);
    let waited = (op.now)().duration_since(deleting_since);
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
async fn stop_trading(ta: Arc<TradingAlgorithm>, deletion: Deletion, ctx: Ctx) -> Result<Cleanup> {
    let op = &ctx.operator;
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
            stopped_at: Time((op.now)()),
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
    op.metrics.forget(&ta);
    ctx.forget(&*ta);
    Ok(Cleanup::Done)
}
