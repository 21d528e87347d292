//! Leader election on a `coordination.k8s.io/v1` Lease, written against kube's API directly.
//!
//! Safety does not depend on clocks agreeing: a standby decides the lease has expired by its
//! own monotonic clock (the record has not changed for `leaseDuration` since it first saw
//! it), never by comparing the record's `renewTime` with its wall clock; and a leader stops
//! leading once `renewDeadline` (shorter than `leaseDuration`) has passed since it *sent* its
//! last successful renewal. A standby can only have seen that renewal after it was sent, so
//! the leader has stopped before any standby can take over, however late the answer came.
//! Every write is a replace with the `resourceVersion` just read, so two candidates can never
//! both win.
//!
//! The candidate publishes, while it leads, the instant its leadership ends unless renewed
//! ([`Leadership`]); the runtime stops reconciling at that instant on its own, so a renewal
//! that hangs, or an election task that dies, cannot leave a replica reconciling past it.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

use super::config::LeaderElectionConfig;
use crate::metrics::Metrics;

/// What a candidate last saw in the lease record, and when (by its own clock).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Observed {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    transitions: Option<i32>,
}

/// Whether this replica leads, as the campaign publishes it: `Some(until)` while it leads,
/// with the instant its leadership ends unless it renews first; `None` while it does not.
pub type Leadership = watch::Receiver<Option<Instant>>;

/// Resolves once `leadership` ends: it turns `None`, its `until` passes without a renewal,
/// or the campaign publishing it is gone.
pub async fn lost(leadership: &mut Leadership) {
    loop {
        let until = *leadership.borrow_and_update();
        let Some(until) = until else {
            return;
        };
        tokio::select! {
            () = tokio::time::sleep_until(until) => return,
            changed = leadership.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// One candidate for a lease.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    observed: Option<(Observed, Instant)>,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lost the lease {0}: another replica holds it or it could not be renewed in time")]
    Lost(String),
}

/// The transition count after a takeover: the Lease's count is anyone's write, so it
/// saturates rather than overflow.
fn next_transitions(current: i32) -> i32 {
    current.saturating_add(1)
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaderElectionConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    fn desired_spec(
        &self,
        now: Timestamp,
        acquired: Option<MicroTime>,
        transitions: i32,
    ) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(seconds(self.config.lease_duration)),
            acquire_time: acquired.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One round: acquire the lease if it is free or expired, renew it if held. Returns
    /// whether this candidate holds it now.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.config.lease_name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.lease_name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.desired_spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let seen = Observed {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            transitions: spec.lease_transitions,
        };
        if self.observed.as_ref().is_none_or(|(o, _)| *o != seen) {
            self.observed = Some((seen.clone(), Instant::now()));
        }
        let held_by_me = seen.holder.as_deref() == Some(self.config.identity.as_str());
        let transitions = spec.lease_transitions.unwrap_or(0);
        let new_spec = if held_by_me {
            self.desired_spec(now, spec.acquire_time.clone(), transitions)
        } else {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.config.lease_duration, Duration::from_secs);
            let expired = seen.holder.is_none()
                || self
                    .observed
                    .as_ref()
                    .is_some_and(|(_, at)| at.elapsed() >= duration);
            if !expired {
                return Ok(false);
            }
            self.desired_spec(now, None, next_transitions(transitions))
        };
        lease.spec = Some(new_spec);
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            // Someone else wrote first; whoever did holds it now.
            Err(kube::Error::Api(s)) if s.code == 409 && !held_by_me => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up so a standby can take over at once (on graceful shutdown).
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.lease_name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }

    /// Campaigns until `release` turns true, publishing on `leading` whether (and until when)
    /// this replica leads. Returns `Err` the moment leadership is lost (renewals failed past
    /// the deadline, or another replica took the lease): the caller must stop reconciling at
    /// once. On `release`, a leader gives the lease up and returns `Ok`; the runtime sends it
    /// only once reconciling has stopped.
    pub async fn campaign(
        mut self,
        leading: watch::Sender<Option<Instant>>,
        metrics: Metrics,
        release: watch::Receiver<bool>,
    ) -> Result<(), LeaseError> {
        let lease = self.config.lease_name.clone();
        let renew_deadline = self.config.renew_deadline;
        metrics.set_leader(&lease, false);
        loop {
            let until = *leading.borrow();
            // The lease is counted from when the request is sent: a standby sees the renewal
            // no earlier than that, whenever the answer arrives here.
            let sent = Instant::now();
            let attempt = self.try_acquire_or_renew();
            let outcome = match until {
                Some(until) => tokio::time::timeout_at(until, attempt)
                    .await
                    .unwrap_or_else(|_| Ok(false)),
                None => attempt.await,
            };
            match outcome {
                Ok(true) => {
                    if until.is_none() {
                        tracing::info!(lease = %lease, identity = %self.config.identity, "became leader");
                        metrics.set_leader(&lease, true);
                    }
                    leading.send_replace(Some(sent + renew_deadline));
                }
                Ok(false) if until.is_some() => return Err(self.lose(&leading, &metrics)),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, lease = %lease, "lease request failed");
                    if until.is_some_and(|until| Instant::now() >= until) {
                        return Err(self.lose(&leading, &metrics));
                    }
                }
            }
            let wait = match *leading.borrow() {
                // A leader must not sleep past its own deadline.
                Some(until) => self
                    .config
                    .retry_period
                    .min(until.saturating_duration_since(Instant::now())),
                None => self.config.retry_period,
            };
            let releasing = tokio::select! {
                () = tokio::time::sleep(wait) => false,
                () = crate::serving::stopped(release.clone()) => true,
            };
            if releasing {
                let until = *leading.borrow();
                if until.is_some_and(|until| Instant::now() >= until) {
                    // The deadline passed first: this is a loss, and the lease is not ours to
                    // release any more.
                    return Err(self.lose(&leading, &metrics));
                }
                if until.is_some() {
                    leading.send_replace(None);
                    metrics.set_leader(&lease, false);
                    if let Err(error) = self.release().await {
                        tracing::warn!(%error, lease = %lease, "could not release the lease");
                    }
                }
                return Ok(());
            }
        }
    }

    fn lose(&self, leading: &watch::Sender<Option<Instant>>, metrics: &Metrics) -> LeaseError {
        leading.send_replace(None);
        metrics.set_leader(&self.config.lease_name, false);
        tracing::error!(lease = %self.config.lease_name, "lost leadership; stopping");
        LeaseError::Lost(self.config.lease_name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transition_count_from_the_lease_saturates() {
        assert_eq!(next_transitions(3), 4);
        assert_eq!(next_transitions(i32::MAX), i32::MAX);
    }
}
