//! Conditions in the Kubernetes shape (`type`, `status`, `reason`, `message`,
//! `lastTransitionTime`, `observedGeneration`) on a status' condition list.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

/// What a reconcile observed for one condition type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed<'a> {
    pub type_: &'a str,
    pub status: ConditionStatus,
    /// CamelCase, e.g. `MinimumReplicasAvailable`.
    pub reason: &'a str,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("condition reason {0:?} must be CamelCase: a capital letter, then letters and digits")]
    InvalidReason(String),
}

/// Whether a reason is CamelCase, as the Kubernetes API conventions require.
pub fn is_camel_case(reason: &str) -> bool {
    let mut chars = reason.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

/// Sets the condition of `observed.type_` on the list. `lastTransitionTime` becomes `now` only
/// when the status flips (or the condition is new); reason, message and `observedGeneration`
/// always follow what was observed. Returns whether the list changed.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    observed: Observed<'_>,
    generation: Option<i64>,
    now: Timestamp,
) -> Result<bool, ConditionError> {
    if !is_camel_case(observed.reason) {
        return Err(ConditionError::InvalidReason(observed.reason.to_string()));
    }
    let status = observed.status.as_str();
    match conditions.iter_mut().find(|c| c.type_ == observed.type_) {
        Some(existing) => {
            let before = existing.clone();
            if existing.status != status {
                existing.status = status.to_string();
                existing.last_transition_time = Time(now);
            }
            existing.reason = observed.reason.to_string();
            existing.message = observed.message;
            existing.observed_generation = generation;
            Ok(*existing != before)
        }
        None => {
            conditions.push(Condition {
                type_: observed.type_.to_string(),
                status: status.to_string(),
                reason: observed.reason.to_string(),
                message: observed.message,
                last_transition_time: Time(now),
                observed_generation: generation,
            });
            Ok(true)
        }
    }
}

/// Sets `Ready=False` with the reason and message of `error`: what the user must change (an
/// invalid spec, a child whose name is taken, a child the API server refused).
pub fn set_not_ready(
    conditions: &mut Vec<Condition>,
    error: &crate::Error,
    generation: Option<i64>,
    now: Timestamp,
) {
    // Error reasons are CamelCase literals; the unit tests of `Error::reason` hold them to it.
    let _ = set_condition(
        conditions,
        Observed {
            type_: "Ready",
            status: ConditionStatus::False,
            reason: error.reason(),
            message: error.to_string(),
        },
        generation,
        now,
    );
}

/// The condition of a type, if set.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of a type is set and `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Removes the condition of a type; returns whether it was there.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::SignedDuration;
    use proptest::prelude::*;

    fn ready(status: ConditionStatus, reason: &str) -> Observed<'_> {
        Observed {
            type_: "Ready",
            status,
            reason,
            message: format!("{reason} message"),
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() -> Result<(), ConditionError> {
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = t0 + SignedDuration::from_secs(60);
        let t2 = t1 + SignedDuration::from_secs(60);
        let mut conditions = Vec::new();

        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::False, "Progressing"),
            Some(1),
            t0
        )?);
        // Same status, new reason and generation: content changes, transition time stays.
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::False, "ScalingUp"),
            Some(2),
            t1
        )?);
        let c = find(&conditions, "Ready").cloned();
        assert_eq!(c.as_ref().map(|c| c.last_transition_time.0), Some(t0));
        assert_eq!(c.as_ref().and_then(|c| c.observed_generation), Some(2));
        assert_eq!(c.map(|c| c.reason), Some("ScalingUp".to_string()));

        // The status flips: the transition time moves.
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::True, "Available"),
            Some(2),
            t2
        )?);
        assert_eq!(
            find(&conditions, "Ready").map(|c| c.last_transition_time.0),
            Some(t2)
        );
        assert!(is_true(&conditions, "Ready"));
        Ok(())
    }

    #[test]
    fn setting_the_same_observation_changes_nothing() -> Result<(), ConditionError> {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ready(ConditionStatus::True, "Available"),
            Some(3),
            Timestamp::UNIX_EPOCH,
        )?;
        let later = Timestamp::UNIX_EPOCH + SignedDuration::from_secs(3600);
        assert!(!set_condition(
            &mut conditions,
            ready(ConditionStatus::True, "Available"),
            Some(3),
            later
        )?);
        assert_eq!(conditions[0].last_transition_time.0, Timestamp::UNIX_EPOCH);
        Ok(())
    }

    #[test]
    fn other_types_are_left_alone() -> Result<(), ConditionError> {
        let mut conditions = Vec::new();
        let now = Timestamp::UNIX_EPOCH;
        set_condition(
            &mut conditions,
            ready(ConditionStatus::True, "Available"),
            None,
            now,
        )?;
        set_condition(
            &mut conditions,
            Observed {
                type_: "Degraded",
                status: ConditionStatus::False,
                reason: "AsExpected",
                message: String::new(),
            },
            None,
            now,
        )?;
        assert_eq!(conditions.len(), 2);
        assert!(remove(&mut conditions, "Degraded"));
        assert_eq!(conditions.len(), 1);
        Ok(())
    }

    #[test]
    fn reasons_must_be_camel_case() {
        for bad in ["", "lowerCase", "Has Space", "Dash-ed", "Under_score"] {
            let r = set_condition(
                &mut Vec::new(),
                ready(ConditionStatus::True, bad),
                None,
                Timestamp::UNIX_EPOCH,
            );
            assert_eq!(r, Err(ConditionError::InvalidReason(bad.to_string())));
        }
        assert!(is_camel_case("RiskLimitBreached"));
    }

    proptest! {
        #[test]
        fn transition_time_is_the_time_of_the_last_flip(flips in proptest::collection::vec(any::<bool>(), 1..20)) {
            let mut conditions = Vec::new();
            let mut last_flip = None;
            let mut previous = None;
            for (i, status) in flips.iter().enumerate() {
                let now = Timestamp::UNIX_EPOCH + SignedDuration::from_secs(i as i64);
                if previous != Some(*status) {
                    last_flip = Some(now);
                }
                previous = Some(*status);
                set_condition(&mut conditions, ready((*status).into(), "Observed"), None, now)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            prop_assert_eq!(conditions.len(), 1);
            prop_assert_eq!(Some(conditions[0].last_transition_time.0), last_flip);
        }
    }
}
