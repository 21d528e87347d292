//! The risk guard: whether an algorithm may trade. A report for today whose P&L is at or
//! below minus the daily loss limit halts trading for the rest of that UTC day; the halt ends
//! on the next UTC day, or earlier when someone sets the annotation
//! `fintech.io/resume-trading` to the halted day
//! (`kubectl annotate ta NAME fintech.io/resume-trading=$(date -u +%F) --overwrite`),
//! which also keeps the guard from halting again that day. `spec.suspend: true` stops
//! trading by hand.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;
use kube::ResourceExt;

use crate::crd::{RiskHalt, TradingAlgorithm};
use crate::report::Report;

/// Annotation by which an operator (a human) resumes a halted algorithm for the day it names.
pub const RESUME_ANNOTATION: &str = "fintech.io/resume-trading";

/// The UTC trading day of an instant, `YYYY-MM-DD`.
pub fn trading_day(now: Timestamp) -> String {
    now.to_zoned(TimeZone::UTC).date().to_string()
}

#[derive(Clone, Debug, PartialEq)]
pub enum TradingState {
    Trading,
    /// `spec.suspend: true`.
    Suspended,
    /// The daily loss limit was breached.
    Halted(RiskHalt),
}

impl TradingState {
    pub fn is_stopped(&self) -> bool {
        !matches!(self, Self::Trading)
    }

    pub fn halt(&self) -> Option<&RiskHalt> {
        match self {
            Self::Halted(h) => Some(h),
            _ => None,
        }
    }
}

/// Decides from the spec, the last halt recorded in status, and today's report.
pub fn assess(ta: &TradingAlgorithm, report: Option<&Report>, now: Timestamp) -> TradingState {
    let today = trading_day(now);
    let resumed_today =
        ta.annotations().get(RESUME_ANNOTATION).map(String::as_str) == Some(today.as_str());
    let ongoing = ta
        .status
        .as_ref()
        .and_then(|s| s.risk_halt.clone())
        .filter(|h| h.trading_day == today && !resumed_today);
    let breach = report
        .filter(|r| r.trading_day == today && !resumed_today)
        .filter(|r| r.daily_pnl <= -(ta.spec.risk_limits.daily_loss_limit as f64))
        .map(|r| RiskHalt {
            trading_day: today.clone(),
            daily_pnl: r.daily_pnl,
            since: Time(now),
        });
    match (ta.spec.suspend == Some(true), ongoing.or(breach)) {
        (_, Some(halt)) => TradingState::Halted(halt),
        (true, None) => TradingState::Suspended,
        (false, None) => TradingState::Trading,
    }
}

/// Today's P&L when it is past the loss limit and trading goes on only because a human
/// resumed it for today: the breach is real, the halt was lifted.
pub fn resumed_over_limit(
    ta: &TradingAlgorithm,
    report: Option<&Report>,
    now: Timestamp,
) -> Option<f64> {
    let today = trading_day(now);
    let resumed_today =
        ta.annotations().get(RESUME_ANNOTATION).map(String::as_str) == Some(today.as_str());
    report
        .filter(|r| resumed_today && r.trading_day == today)
        .filter(|r| r.daily_pnl <= -(ta.spec.risk_limits.daily_loss_limit as f64))
        .map(|r| r.daily_pnl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::TradingAlgorithmStatus;
    use crate::resources::tests::sample;
    use k8s_openapi::jiff::SignedDuration;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn report(day: &str, pnl: f64) -> Report {
        Report {
            trading_day: day.into(),
            total_trades: 10,
            daily_pnl: pnl,
        }
    }

    #[test]
    fn a_loss_at_the_limit_halts_for_the_day() {
        let ta = sample(); // dailyLossLimit 100000
        let now = at("2026-11-24T15:00:00Z");
        assert_eq!(
            assess(&ta, Some(&report("2026-11-24", -99_999.0)), now),
            TradingState::Trading
        );
        let state = assess(&ta, Some(&report("2026-11-24", -100_000.0)), now);
        assert_eq!(
            state.halt().map(|h| h.trading_day.as_str()),
            Some("2026-11-24")
        );
        // Yesterday's losses do not halt today.
        assert_eq!(
            assess(&ta, Some(&report("2026-11-23", -500_000.0)), now),
            TradingState::Trading
        );
    }

    #[test]
    fn a_halt_lasts_until_the_next_utc_day_or_a_resume() {
        let mut ta = sample();
        let now = at("2026-11-24T23:59:00Z");
        let halt = assess(&ta, Some(&report("2026-11-24", -200_000.0)), now)
            .halt()
            .cloned();
        ta.status = Some(TradingAlgorithmStatus {
            risk_halt: halt,
            ..TradingAlgorithmStatus::default()
        });
        // Later that day, even with no report, it stays halted.
        assert!(assess(&ta, None, now).is_stopped());
        // The next UTC day it trades again.
        assert_eq!(
            assess(&ta, None, now + SignedDuration::from_mins(2)),
            TradingState::Trading
        );
        // A resume for the halted day clears it at once, and the same report does not re-halt.
        ta.metadata.annotations =
            Some([(RESUME_ANNOTATION.to_string(), "2026-11-24".to_string())].into());
        assert_eq!(
            assess(&ta, Some(&report("2026-11-24", -200_000.0)), now),
            TradingState::Trading
        );
    }

    #[test]
    fn suspend_is_a_manual_stop() {
        let mut ta = sample();
        ta.spec.suspend = Some(true);
        assert_eq!(
            assess(&ta, None, at("2026-11-24T10:00:00Z")),
            TradingState::Suspended
        );
    }
}
