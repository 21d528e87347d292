//! How a rollout fails: its pods crash-loop (seen at once, while a pass looks at the pods
//! every [`CRASH_CHECK_INTERVAL`]), it is not available by its deadline, or a canary's
//! analysis fails it ([`super::analysis`]), or a person aborts it ([`super::ABORT_ANNOTATION`]).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::{DeploymentState, elapsed};
use crate::crd::Revision;

/// How often a pass looks at the pods while a rollout is in progress, so a version whose
/// pods crash-loop is rolled back within about this long of the first crash loop.
pub const CRASH_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Why a version failed to roll out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCause {
    /// Its pods crash-loop: rolled back at once.
    CrashLoop,
    /// Not available within `progressDeadlineSeconds`.
    Deadline,
    /// A canary analysis metric failed more than its `failureLimit`.
    Analysis,
    /// A person gave up on it ([`super::ABORT_ANNOTATION`]).
    Aborted,
}

impl FailureCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CrashLoop => "crash_loop",
            Self::Deadline => "deadline",
            Self::Analysis => "analysis",
            Self::Aborted => "aborted",
        }
    }
}

/// A version that failed to roll out: why, in words and as a cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overdue {
    pub cause: FailureCause,
    pub why: String,
}

/// Whether the Deployment rolling out `target` has failed: its pods crash-loop, it reports
/// its own deadline exceeded, or `deadline` has passed since `since`.
pub(super) fn overdue(
    state: &DeploymentState,
    target: &Revision,
    since: &Time,
    now: Timestamp,
    deadline: Duration,
) -> Option<Overdue> {
    if state.is_complete(target) {
        return None;
    }
    if let Some(crash) = state
        .crash_loop
        .as_ref()
        .filter(|_| state.revision.as_ref() == Some(target))
    {
        return Some(Overdue {
            cause: FailureCause::CrashLoop,
            why: crash.clone(),
        });
    }
    let available = format!(
        "{} of {} replicas available",
        state.available_replicas.min(state.replicas),
        state.replicas
    );
    let why = if state.reports_deadline_exceeded(target) {
        format!("the Deployment reports ProgressDeadlineExceeded ({available})")
    } else if elapsed(since, now) > deadline {
        format!(
            "not available within progressDeadlineSeconds ({}s): {available}",
            deadline.as_secs()
        )
    } else {
        return None;
    };
    Some(Overdue {
        cause: FailureCause::Deadline,
        why,
    })
}
