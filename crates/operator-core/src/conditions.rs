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

/// A condition or event reason: CamelCase, as the Kubernetes API conventions require.
/// Built with [`reason!`](crate::reason), which checks the literal when the code compiles, so
/// setting a condition cannot fail at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reason(&'static str);

impl Reason {
    /// The reason `reason`; panics unless it is CamelCase. Call it through
    /// [`reason!`](crate::reason), where the check runs at compile time.
    pub const fn new(reason: &'static str) -> Self {
        assert!(is_camel_case(reason), "a reason must be CamelCase");
        Self(reason)
    }

    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A [`Reason`] checked at compile time: `reason!("MinimumReplicasAvailable")`.
#[macro_export]
macro_rules! reason {
    ($reason:literal) => {
        const { $crate::conditions::Reason::new($reason) }
    };
}

/// What a reconcile observed for one condition type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed<'a> {
    pub type_: &'a str,
    pub status: ConditionStatus,
    pub reason: Reason,
    pub message: String,
}

/// Whether a reason is CamelCase: a capital letter, then letters and digits.
pub const fn is_camel_case(reason: &str) -> bool {
    let bytes = reason.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_uppercase() {
        return false;
    }
    let mut i = 1;
    while i < bytes.len() {
        if !bytes[i].is_ascii_alphanumeric() {
            return false;
        }
        i += 1;
    }
    true
}

/// Sets the condition of `observed.type_` on the list. `lastTransitionTime` becomes `now` only
/// when the status flips (or the condition is new); reason, message and `observedGeneration`
/// always follow what was observed. Returns whether the list changed.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    observed: Observed<'_>,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let status = observed.status.as_str();
    match conditions.iter_mut().find(|c| c.type_ == observed.type_) {
        Some(existing) => {
            let before = existing.clone();
            if existing.status != status {
                existing.status = status.to_string();
                existing.last_transition_time = Time(now);
            }
            existing.reason = observed.reason.as_str().to_string();
            existing.message = observed.message;
            existing.observed_generation = generation;
            *existing != before
        }
        None => {
            conditions.push(Condition {
                type_: observed.type_.to_string(),
                status: status.to_string(),
                reason: observed.reason.as_str().to_string(),
                message: observed.message,
                last_transition_time: Time(now),
                observed_generation: generation,
            });
            true
        }
    }
}

/// The condition of a type, if set.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of a type is set and `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Whether a status read as JSON (an object this operator does not type, or any served
/// kind's) has its `Ready` condition `True`.
pub fn reports_ready(status: &serde_json::Value) -> bool {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// A condition of a built-in workload's status: Deployments and Jobs each have their own
/// condition type, with the same `type` and `status` fields.
pub trait WorkloadCondition {
    fn type_(&self) -> &str;
    fn status(&self) -> &str;
}

impl WorkloadCondition for k8s_openapi::api::apps::v1::DeploymentCondition {
    fn type_(&self) -> &str {
        &self.type_
    }
    fn status(&self) -> &str {
        &self.status
    }
}

impl WorkloadCondition for k8s_openapi::api::batch::v1::JobCondition {
    fn type_(&self) -> &str {
        &self.type_
    }
    fn status(&self) -> &str {
        &self.status
    }
}

/// A workload's condition of a type, if its status has one.
pub fn workload_condition<'a, C: WorkloadCondition>(
    conditions: Option<&'a Vec<C>>,
    type_: &str,
) -> Option<&'a C> {
    conditions?.iter().find(|c| c.type_() == type_)
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

    fn ready(status: ConditionStatus, reason: Reason) -> Observed<'static> {
        Observed {
            type_: "Ready",
            status,
            reason,
            message: format!("{reason} message"),
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = t0 + SignedDuration::from_secs(60);
        let t2 = t1 + SignedDuration::from_secs(60);
        let mut conditions = Vec::new();

        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::False, crate::reason!("Progressing")),
            Some(1),
            t0
        ));
        // Same status, new reason and generation: content changes, transition time stays.
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::False, crate::reason!("ScalingUp")),
            Some(2),
            t1
        ));
        let c = find(&conditions, "Ready").cloned();
        assert_eq!(c.as_ref().map(|c| c.last_transition_time.0), Some(t0));
        assert_eq!(c.as_ref().and_then(|c| c.observed_generation), Some(2));
        assert_eq!(c.map(|c| c.reason), Some("ScalingUp".to_string()));

        // The status flips: the transition time moves.
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::True, crate::reason!("Available")),
            Some(2),
            t2
        ));
        assert_eq!(
            find(&conditions, "Ready").map(|c| c.last_transition_time.0),
            Some(t2)
        );
        assert!(is_true(&conditions, "Ready"));
    }

    #[test]
    fn setting_the_same_observation_changes_nothing() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ready(ConditionStatus::True, crate::reason!("Available")),
            Some(3),
            Timestamp::UNIX_EPOCH,
        );
        let later = Timestamp::UNIX_EPOCH + SignedDuration::from_secs(3600);
        assert!(!set_condition(
            &mut conditions,
            ready(ConditionStatus::True, crate::reason!("Available")),
            Some(3),
            later
        ));
        assert_eq!(conditions[0].last_transition_time.0, Timestamp::UNIX_EPOCH);
    }

    #[test]
    fn other_types_are_left_alone() {
        let mut conditions = Vec::new();
        let now = Timestamp::UNIX_EPOCH;
        set_condition(
            &mut conditions,
            ready(ConditionStatus::True, crate::reason!("Available")),
            None,
            now,
        );
        set_condition(
            &mut conditions,
            Observed {
                type_: "Degraded",
                status: ConditionStatus::False,
                reason: crate::reason!("AsExpected"),
                message: String::new(),
            },
            None,
            now,
        );
        assert_eq!(conditions.len(), 2);
        assert!(remove(&mut conditions, "Degraded"));
        assert_eq!(conditions.len(), 1);
    }

    #[test]
    fn reasons_must_be_camel_case() {
        for bad in ["", "lowerCase", "Has Space", "Dash-ed", "Under_score"] {
            assert!(!is_camel_case(bad), "{bad:?}");
            assert!(
                std::panic::catch_unwind(|| Reason::new(bad)).is_err(),
                "{bad:?}"
            );
        }
        assert!(is_camel_case("RiskLimitBreached"));
        assert_eq!(crate::reason!("RiskLimitBreached"), "RiskLimitBreached");
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
                set_condition(&mut conditions, ready((*status).into(), crate::reason!("Observed")), None, now);
            }
            prop_assert_eq!(conditions.len(), 1);
            prop_assert_eq!(Some(conditions[0].last_transition_time.0), last_flip);
        }
    }
}
