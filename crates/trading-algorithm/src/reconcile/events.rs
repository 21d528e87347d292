//! What a pass tells a human: children changed, and every change of the trading state.

use super::Ctx;
use crate::crd::{Phase, TradingAlgorithm};
use crate::risk::{self, Assessment, Resume, TradingState};

/// Events a human wants in `kubectl describe`: what was created or changed, and every
/// change of the trading state.
pub(super) async fn announce(ta: &TradingAlgorithm, ctx: &Ctx, assessment: &Assessment) {
    let events = &ctx.events;
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
