//! Drain before delete, for operators whose resources hold work in flight (an adapter's
//! payments, an orchestrator's sagas): the finalizer's cleanup stops new work, waits for what
//! runs to finish, and releases once nothing runs — or once the resource's drain timeout has
//! passed since the deletion, with a Warning event naming what still ran. The operator says
//! what runs and how to stop new work; the bounds, the events and the condition are here.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{Resource, ResourceExt};

use crate::conditions::{ConditionStatus, Observed, set_condition};
use crate::controller::Context;
use crate::duration::GoDuration;
use crate::finalizer::{Cleanup, Deletion, since_deletion};
use crate::status::{ReportedStatus, StatusResource};

/// A drain never looks again sooner than this, however close its timeout.
const SHORTEST_LOOK: Duration = Duration::from_millis(200);

/// One pass of a bounded drain: how long it may take, and how long it has taken.
#[derive(Clone, Debug, PartialEq)]
pub struct Drain {
    timeout: Duration,
    written: String,
    elapsed: Duration,
}

impl Drain {
    /// The drain of `obj`, bounded by its `timeout` field (`fallback` when that is
    /// unreadable: the bound holds whatever the spec says). `None` when the whole namespace
    /// is going: everything in it goes, so nothing is waited for and the caller releases.
    pub fn begin<K: Resource>(
        obj: &K,
        deletion: Deletion,
        timeout: &GoDuration,
        fallback: Duration,
        now: Timestamp,
    ) -> Option<Self> {
        if deletion == Deletion::Namespace {
            tracing::info!(
                name = %obj.name_any(),
                namespace = obj.namespace().unwrap_or_default(),
                "namespace deleted: released without a drain"
            );
            return None;
        }
        Some(Self {
            timeout: timeout.or(fallback),
            written: timeout.to_string(),
            elapsed: since_deletion(obj, now),
        })
    }

    /// The timeout as the spec writes it, for messages.
    pub fn timeout(&self) -> &str {
        &self.written
    }

    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Ready=False, reason `Draining`, with `message` (what is waited for, and how long).
    pub fn mark_draining(
        &self,
        conditions: &mut Vec<Condition>,
        message: String,
        generation: Option<i64>,
        now: Timestamp,
    ) {
        let observed = Observed {
            type_: "Ready",
            status: ConditionStatus::False,
            reason: crate::reason!("Draining"),
            message,
        };
        set_condition(conditions, observed, generation, now);
    }

    /// Look again after `poll`, or when the timeout falls if that is sooner.
    pub fn look_again(&self, poll: Duration) -> Cleanup {
        let left = self.timeout.saturating_sub(self.elapsed);
        Cleanup::Waiting(poll.min(left).max(SHORTEST_LOOK))
    }
}

impl<O> Context<O> {
    /// Whether `drain` is over, said in an event: nothing `running` (a Normal `Drained`
    /// event, `finished`), or the timeout passed with something still running (a Warning
    /// `DrainTimedOut`: "<running> still running after the drain timeout (<timeout>):
    /// released anyway; <advice>"). When it is over the caller releases; otherwise it stops
    /// new work and looks again.
    pub async fn drain_over<K>(
        &self,
        obj: &K,
        drain: &Drain,
        running: Option<&str>,
        finished: &str,
        advice: &str,
    ) -> bool
    where
        K: Resource<DynamicType = ()>,
    {
        let Some(running) = running else {
            self.events
                .normal(obj, crate::reason!("Drained"), "Delete", finished)
                .await;
            return true;
        };
        if drain.elapsed < drain.timeout {
            return false;
        }
        let note = format!(
            "{running} still running after the drain timeout ({}): released anyway; {advice}",
            drain.written
        );
        self.events
            .warning(obj, crate::reason!("DrainTimedOut"), "Delete", note)
            .await;
        true
    }

    /// A drain goes on: `status` says so (Ready=False, reason `Draining`, `message`: what is
    /// waited for, and how long) and is written; the cleanup looks again after `poll`, or
    /// when the timeout falls if that is sooner.
    pub async fn still_draining<K, S>(
        &self,
        obj: &K,
        mut status: S,
        drain: &Drain,
        message: String,
        poll: Duration,
    ) -> Result<Cleanup, crate::Error>
    where
        K: StatusResource<S>,
        S: ReportedStatus,
    {
        let now = self.now();
        drain.mark_draining(status.conditions_mut(), message, obj.meta().generation, now);
        self.write_status(obj, &status).await?;
        Ok(drain.look_again(poll))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn deleted_ago(seconds: i64, now: Timestamp) -> ConfigMap {
        let mut obj = ConfigMap::default();
        obj.metadata.deletion_timestamp =
            Some(Time(now - jiff::SignedDuration::from_secs(seconds)));
        obj
    }

    #[test]
    fn a_namespace_deletion_waits_for_nothing() {
        let now = Timestamp::now();
        let obj = deleted_ago(1, now);
        let timeout = GoDuration::from("30s");
        let fallback = Duration::from_secs(30);
        assert!(Drain::begin(&obj, Deletion::Namespace, &timeout, fallback, now).is_none());
        assert!(Drain::begin(&obj, Deletion::Resource, &timeout, fallback, now).is_some());
    }

    #[test]
    fn it_looks_again_no_later_than_the_timeout_and_no_sooner_than_200ms() {
        let now = Timestamp::now();
        let look = |elapsed, timeout: &str| {
            let obj = deleted_ago(elapsed, now);
            let timeout = GoDuration::from(timeout);
            Drain::begin(&obj, Deletion::Resource, &timeout, Duration::ZERO, now)
                .map(|d| d.look_again(Duration::from_secs(5)))
        };
        assert_eq!(
            look(0, "1m"),
            Some(Cleanup::Waiting(Duration::from_secs(5)))
        );
        assert_eq!(
            look(58, "1m"),
            Some(Cleanup::Waiting(Duration::from_secs(2)))
        );
        assert_eq!(look(90, "1m"), Some(Cleanup::Waiting(SHORTEST_LOOK)));
    }

    #[test]
    fn an_unreadable_timeout_is_bounded_by_the_fallback() {
        let now = Timestamp::now();
        let obj = deleted_ago(40, now);
        let soon = GoDuration::from("soon");
        let drain = Drain::begin(
            &obj,
            Deletion::Resource,
            &soon,
            Duration::from_secs(30),
            now,
        );
        assert_eq!(drain.as_ref().map(Drain::timeout), Some("soon"));
        assert_eq!(
            drain.map(|d| d.look_again(Duration::from_secs(5))),
            Some(Cleanup::Waiting(SHORTEST_LOOK))
        );
    }
}
