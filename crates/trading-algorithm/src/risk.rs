//! The risk guard: whether an algorithm may trade. A report for today whose P&L is at or
//! below minus the daily loss limit halts trading for the rest of that UTC day, and the halt
//! is recorded in `status.riskHalt` with the instant it began (`since`). The halt ends on the
//! next UTC day, or earlier when a human **acknowledges that halt**: annotation
//! `fintech.io/resume-trading` set to its `since`
//! (`kubectl annotate ta NAME fintech.io/resume-trading=$(kubectl get ta NAME -o
//! jsonpath='{.status.riskHalt.since}') --overwrite`). The resume is recorded in
//! `status.riskResume` (which halt, when, and the field manager that wrote the annotation) and
//! keeps the guard from halting again that day.
//!
//! A resume can only follow a halt: the instant it names exists only once the halt does, so
//! the guard cannot be disarmed in advance. Any other value (a day, a halt that is over, a
//! guess) is ignored with a Warning event, and the guard stays armed. `spec.suspend: true`
//! stops trading by hand.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;
use kube::ResourceExt;

use crate::crd::{RiskHalt, RiskResume, TradingAlgorithm};
use crate::report::Report;

/// Annotation by which a human resumes a halted algorithm: the `since` of the halt it lifts.
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

/// What the resume annotation means this pass.
#[derive(Clone, Debug, PartialEq)]
pub enum Resume {
    /// No annotation, or one already dealt with (acknowledged, or ignored and reported).
    Nothing,
    /// It names the ongoing halt: trading resumes, and this is recorded.
    Acknowledged(RiskResume),
    /// It names no halt that is on: ignored, the guard stays armed; the reason in words.
    Ignored { value: String, why: String },
}

/// The guard's decision for one pass: the trading state, and what the resume annotation did.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    pub state: TradingState,
    pub resume: Resume,
}

/// The field manager that last wrote the resume annotation: who resumed, as the API server
/// recorded it.
fn resumed_by(ta: &TradingAlgorithm) -> String {
    operator_core::annotations::written_by(&ta.metadata, RESUME_ANNOTATION)
        .map_or_else(|| "unknown".into(), |(manager, _)| manager)
}

/// Whether the annotation's value names the instant `since`.
fn names_instant(value: &str, since: &Time) -> bool {
    value
        .trim()
        .parse::<Timestamp>()
        .is_ok_and(|t| t == since.0)
}

/// Decides from the spec, the halt and resume recorded in status, the resume annotation and
/// today's report.
pub fn assess(ta: &TradingAlgorithm, report: Option<&Report>, now: Timestamp) -> Assessment {
    let today = trading_day(now);
    let status = ta.status.clone().unwrap_or_default();
    let annotation = ta.annotations().get(RESUME_ANNOTATION).cloned();
    let ongoing = status.risk_halt.filter(|h| h.trading_day == today);
    let resumed_today = status
        .risk_resume
        .as_ref()
        .is_some_and(|r| r.trading_day == today);

    let resume = match (&annotation, &ongoing) {
        (Some(value), Some(halt)) if names_instant(value, &halt.since) => {
            Resume::Acknowledged(RiskResume {
                trading_day: halt.trading_day.clone(),
                halted_since: halt.since.clone(),
                daily_pnl: halt.daily_pnl,
                resumed_at: Time(now),
                resumed_by: resumed_by(ta),
            })
        }
        (Some(value), _) => {
            let acknowledged = status
                .risk_resume
                .as_ref()
                .is_some_and(|r| names_instant(value, &r.halted_since));
            let reported = status.ignored_resume.as_deref() == Some(value.as_str());
            if acknowledged || reported {
                Resume::Nothing
            } else {
                let why = match &ongoing {
                    Some(halt) => format!(
                        "it does not name the halt that is on (status.riskHalt.since is {})",
                        halt.since.0
                    ),
                    None => "no halt is on: a resume acknowledges a halt that happened, it cannot approve one in advance".into(),
                };
                Resume::Ignored {
                    value: value.clone(),
                    why,
                }
            }
        }
        (None, _) => Resume::Nothing,
    };

    let breach = report
        .filter(|r| r.trading_day == today && !resumed_today)
        .filter(|r| r.daily_pnl <= -(ta.spec.risk_limits.daily_loss_limit as f64))
        .map(|r| RiskHalt {
            trading_day: today.clone(),
            daily_pnl: r.daily_pnl,
            since: Time(now),
        });
    let halt = match resume {
        Resume::Acknowledged(_) => None,
        _ => ongoing.or(breach),
    };
    let state = match (ta.spec.suspend == Some(true), halt) {
        (_, Some(halt)) => TradingState::Halted(halt),
        (true, None) => TradingState::Suspended,
        (false, None) => TradingState::Trading,
    };
    Assessment { state, resume }
}

/// Today's P&L when it is past the loss limit and trading goes on only because a human
/// acknowledged today's halt: the breach is real, the halt was lifted.
pub fn resumed_over_limit(
    ta: &TradingAlgorithm,
    resume: Option<&RiskResume>,
    report: Option<&Report>,
    now: Timestamp,
) -> Option<f64> {
    let today = trading_day(now);
    let resumed_today = resume.is_some_and(|r| r.trading_day == today);
    report
        .filter(|r| resumed_today && r.trading_day == today)
        .filter(|r| r.daily_pnl <= -(ta.spec.risk_limits.daily_loss_limit as f64))
        .map(|r| r.daily_pnl)
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn state(ta: &TradingAlgorithm, report: Option<&Report>, now: Timestamp) -> TradingState {
        assess(ta, report, now).state
    }

    fn annotate(ta: &mut TradingAlgorithm, value: &str) {
        ta.metadata.annotations = Some([(RESUME_ANNOTATION.to_string(), value.to_string())].into());
    }

    /// `ta` with what a pass records: the halt or resume it decided, the ignored value.
    fn record(ta: &mut TradingAlgorithm, assessment: &Assessment) {
        let mut status = ta.status.clone().unwrap_or_default();
        status.risk_halt = assessment.state.halt().cloned();
        match &assessment.resume {
            Resume::Acknowledged(r) => status.risk_resume = Some(r.clone()),
            Resume::Ignored { value, .. } => status.ignored_resume = Some(value.clone()),
            Resume::Nothing => {}
        }
        ta.status = Some(status);
    }

    #[test]
    fn a_loss_at_the_limit_halts_for_the_day() {
        let ta = sample(); // dailyLossLimit 100000
        let now = at("2026-11-24T15:00:00Z");
        assert_eq!(
            state(&ta, Some(&report("2026-11-24", -99_999.0)), now),
            TradingState::Trading
        );
        let halted = state(&ta, Some(&report("2026-11-24", -100_000.0)), now);
        assert_eq!(
            halted.halt().map(|h| h.trading_day.as_str()),
            Some("2026-11-24")
        );
        // Yesterday's losses do not halt today.
        assert_eq!(
            state(&ta, Some(&report("2026-11-23", -500_000.0)), now),
            TradingState::Trading
        );
    }

    #[test]
    fn a_halt_lasts_until_the_next_utc_day_or_its_acknowledgement() {
        let mut ta = sample();
        let now = at("2026-11-24T23:00:00Z");
        let loss = report("2026-11-24", -200_000.0);
        let first = assess(&ta, Some(&loss), now);
        record(&mut ta, &first);
        let since = first.state.halt().map(|h| h.since.0).unwrap_or(now);
        // Later that day, even with no report, it stays halted.
        assert!(state(&ta, None, now + SignedDuration::from_mins(10)).is_stopped());
        // The next UTC day it trades again.
        assert_eq!(
            state(&ta, None, now + SignedDuration::from_mins(61)),
            TradingState::Trading
        );
        // The day alone acknowledges nothing.
        annotate(&mut ta, "2026-11-24");
        let by_day = assess(&ta, Some(&loss), now + SignedDuration::from_mins(5));
        assert!(by_day.state.is_stopped());
        assert!(matches!(by_day.resume, Resume::Ignored { .. }));
        // The halt's own instant lifts it, is recorded, and the same loss does not re-halt.
        annotate(&mut ta, &since.to_string());
        let later = now + SignedDuration::from_mins(6);
        let resumed = assess(&ta, Some(&loss), later);
        assert_eq!(resumed.state, TradingState::Trading);
        let Resume::Acknowledged(recorded) = &resumed.resume else {
            panic!("not acknowledged: {resumed:?}");
        };
        assert_eq!(recorded.halted_since.0, since);
        assert_eq!(recorded.resumed_at.0, later);
        record(&mut ta, &resumed);
        let after = assess(&ta, Some(&report("2026-11-24", -300_000.0)), later);
        assert_eq!(after.state, TradingState::Trading);
        assert_eq!(after.resume, Resume::Nothing);
    }

    #[test]
    fn a_resume_set_before_any_halt_does_not_disarm_the_guard() {
        let mut ta = sample();
        let now = at("2026-11-24T09:00:00Z");
        for value in ["2026-11-24", "2026-11-24T09:00:00Z", "garbage"] {
            annotate(&mut ta, value);
            let quiet = assess(&ta, Some(&report("2026-11-24", 10.0)), now);
            assert_eq!(quiet.state, TradingState::Trading);
            assert!(
                matches!(&quiet.resume, Resume::Ignored { value: v, .. } if v == value),
                "{value}: {quiet:?}"
            );
            record(&mut ta, &quiet);
            // Reported once: the next pass says nothing more of it.
            assert_eq!(assess(&ta, None, now).resume, Resume::Nothing, "{value}");
            // A loss later that day still halts.
            let loss = assess(
                &ta,
                Some(&report("2026-11-24", -60_000.0 - 100_000.0)),
                now + SignedDuration::from_hours(2),
            );
            assert!(loss.state.halt().is_some(), "{value}: {loss:?}");
        }
    }

    #[test]
    fn suspend_is_a_manual_stop() {
        let mut ta = sample();
        ta.spec.suspend = Some(true);
        assert_eq!(
            state(&ta, None, at("2026-11-24T10:00:00Z")),
            TradingState::Suspended
        );
    }
}
