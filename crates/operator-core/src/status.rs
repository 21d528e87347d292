//! Writes to the status subresource, made only when the status differs from what is stored,
//! and the one way every operator reports a spec it cannot realise ([`refused`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::core::object::HasStatus;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use crate::conditions::{ConditionStatus, Observed, Reason, set_condition};
use crate::error::{Error, Result};

/// A namespaced custom resource whose status its operator writes, `S` being that status:
/// what [`crate::Context::write_status`], `refuse`, `start_pass`, `end_pass` and `wait_for_secret` take.
pub trait StatusResource<S>:
    kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + HasStatus<Status = S>
{
}

impl<K, S> StatusResource<S> for K where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + HasStatus<Status = S>
{
}

/// What every operator's status has: conditions, a phase, and the generation it describes;
/// written as JSON, and compared with what is stored so an unchanged status is not written.
pub trait ReportedStatus: Clone + Default + Serialize + PartialEq {
    type Phase: Copy + PartialEq;
    fn conditions(&self) -> &[Condition];
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
    fn phase(&self) -> Option<Self::Phase>;
    fn set_phase(&mut self, phase: Option<Self::Phase>);
    fn set_observed_generation(&mut self, generation: Option<i64>);
}

/// Implements [`ReportedStatus`] for a status struct with the fields every operator's status
/// has: `conditions: Vec<Condition>`, `phase: Option<Phase>` and
/// `observed_generation: Option<i64>`. A kind's status gets the fields and this together
/// from `#[operator_core::resource_status(phase = Phase, conditions = "…")]`.
#[macro_export]
macro_rules! reported_status {
    ($status:ty, $phase:ty) => {
        impl $crate::status::ReportedStatus for $status {
            type Phase = $phase;
            fn conditions(&self) -> &[$crate::status::Condition] {
                &self.conditions
            }
            fn conditions_mut(&mut self) -> &mut Vec<$crate::status::Condition> {
                &mut self.conditions
            }
            fn phase(&self) -> Option<$phase> {
                self.phase
            }
            fn set_phase(&mut self, phase: Option<$phase>) {
                self.phase = phase;
            }
            fn set_observed_generation(&mut self, generation: Option<i64>) {
                self.observed_generation = generation;
            }
        }
    };
}

/// The status of a spec the operator cannot realise (an invalid field, a missing reference):
/// `Ready=False` with the error's reason and message, `observedGeneration` of the refused
/// spec, and the phase of what still runs. Nothing was applied, so a resource that ran keeps
/// its last good phase (the previous spec goes on serving), and `Ready` says so; one that never
/// ran gets `never_ran`.
pub fn refused<S: ReportedStatus>(
    current: Option<&S>,
    error: &Error,
    generation: Option<i64>,
    never_ran: S::Phase,
    now: Timestamp,
) -> S {
    not_ready(
        current,
        error.reason(),
        error.to_string(),
        generation,
        never_ran,
        now,
    )
}

/// [`refused`] for any reason a pass cannot go on (`reason` CamelCase): a spec error, or a
/// wait for something the spec names (a Secret not created yet).
pub fn not_ready<S: ReportedStatus>(
    current: Option<&S>,
    reason: Reason,
    mut message: String,
    generation: Option<i64>,
    never_ran: S::Phase,
    now: Timestamp,
) -> S {
    let mut status = current.cloned().unwrap_or_default();
    let last_good = status.phase().filter(|p| *p != never_ran);
    if last_good.is_some() {
        message.push_str("; nothing was changed: the last valid spec keeps running");
    }
    set_condition(
        status.conditions_mut(),
        Observed {
            type_: "Ready",
            status: ConditionStatus::False,
            reason,
            message,
        },
        generation,
        now,
    );
    status.set_phase(Some(last_good.unwrap_or(never_ran)));
    status.set_observed_generation(generation);
    status
}

/// Replaces the status of `name` with `desired` unless `current` already equals it.
/// Returns whether a write was made. The whole status is replaced (a JSON patch `add` of
/// `/status`), so fields the operator no longer sets disappear.
pub async fn patch_status_if_changed<K, S>(
    api: &Api<K>,
    name: &str,
    current: Option<&S>,
    desired: &S,
) -> Result<bool>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(desired) {
        return Ok(false);
    }
    let value = serde_json::to_value(desired).map_err(|source| Error::Serialization {
        what: format!("status of {name}"),
        source,
    })?;
    let patch: json_patch::Patch = serde_json::from_value(
        json!([{"op": "add", "path": "/status", "value": value}]),
    )
    .map_err(|source| Error::Serialization {
        what: format!("status patch of {name}"),
        source,
    })?;
    api.patch_status(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await?;
    Ok(true)
}

/// How long after a status write a cached object without it counts as stale. Watch events
/// arrive in milliseconds; the bound keeps a status the server rewrites (it should not) from
/// pausing an object for longer.
const STALE_WINDOW: Duration = Duration::from_secs(5);

/// Remembers, per object, the last status this process wrote. A reconcile handed an object
/// whose status is not that one got it from a cache that has not seen the write yet (the
/// operator is the only writer of its status): acting on it would repeat the last pass's
/// transitions (a second "rolled back" event, a second canary step). Such a pass skips; the
/// write's own watch event brings the object back with its new status.
#[derive(Clone, Debug, Default)]
pub struct StatusWrites {
    written: Arc<Mutex<HashMap<String, (serde_json::Value, Instant)>>>,
}

impl StatusWrites {
    fn entries(&self) -> MutexGuard<'_, HashMap<String, (serde_json::Value, Instant)>> {
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `obj` predates the last status write for it.
    pub fn is_stale<K, S>(&self, obj: &K) -> bool
    where
        K: kube::Resource + HasStatus<Status = S>,
        S: Serialize,
    {
        let Some(uid) = obj.meta().uid.clone() else {
            return false;
        };
        let mut entries = self.entries();
        let Some((written, at)) = entries.get(&uid) else {
            return false;
        };
        let current = serde_json::to_value(obj.status()).unwrap_or_default();
        if current == *written || at.elapsed() > STALE_WINDOW {
            entries.remove(&uid);
            return false;
        }
        true
    }

    /// Forgets the writes to objects whose UID is not in `live` (they were deleted).
    pub fn retain(&self, live: &std::collections::HashSet<String>) {
        self.entries().retain(|uid, _| live.contains(uid));
    }

    /// Forgets the write to one object (it was deleted).
    pub fn forget(&self, uid: &str) {
        self.entries().remove(uid);
    }

    /// How many writes are remembered (for memory accounting).
    pub fn remembered(&self) -> usize {
        self.entries().len()
    }

    /// [`patch_status_if_changed`] for `obj`, remembering the write.
    pub async fn patch<K, S>(&self, api: &Api<K>, obj: &K, desired: &S) -> Result<bool>
    where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
        K: HasStatus<Status = S>,
        S: Serialize + PartialEq,
    {
        let name = obj.meta().name.clone().unwrap_or_default();
        let written = patch_status_if_changed(api, &name, obj.status(), desired).await?;
        if written && let Some(uid) = obj.meta().uid.clone() {
            let value = serde_json::to_value(Some(desired)).unwrap_or_default();
            self.entries().insert(uid, (value, Instant::now()));
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldError;

    #[derive(Clone, Debug, Default, PartialEq, Serialize)]
    struct Reported {
        phase: Option<&'static str>,
        conditions: Vec<Condition>,
        observed_generation: Option<i64>,
    }

    crate::reported_status!(Reported, &'static str);

    fn invalid() -> Error {
        Error::invalid_spec(vec![FieldError::new("spec.replicas", "must be at least 1")])
    }

    /// Phase `Failed` while the previous version keeps serving would be a lie.
    #[test]
    fn a_refused_spec_keeps_the_last_good_phase_and_says_so() {
        let running = Reported {
            phase: Some("Running"),
            observed_generation: Some(3),
            ..Reported::default()
        };
        let kept = refused(
            Some(&running),
            &invalid(),
            Some(4),
            "Failed",
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(kept.phase, Some("Running"));
        assert_eq!(kept.observed_generation, Some(4));
        let ready = &kept.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert_eq!(
            ready.message,
            "invalid spec: spec.replicas: must be at least 1; nothing was changed: the last valid spec keeps running"
        );

        // A resource that never ran has nothing to keep.
        let fresh = refused(
            None::<&Reported>,
            &invalid(),
            Some(1),
            "Failed",
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(fresh.phase, Some("Failed"));
        assert!(!fresh.conditions[0].message.contains("keeps running"));
    }
}
