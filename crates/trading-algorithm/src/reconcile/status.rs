//! Status from what was applied and observed: the phase, Ready, the risk state, the report.

use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use operator_core::conditions::{ConditionStatus, Observed, Reason, set_condition};

use crate::crd::{Phase, TradingAlgorithm, TradingAlgorithmStatus};
use crate::report::Report;
use crate::resources;
use crate::risk::{self, Assessment, Resume, TradingState};

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
