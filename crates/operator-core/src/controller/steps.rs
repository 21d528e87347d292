//! The steps of a reconcile pass that every operator takes the same way: start (stale
//! status, ignored annotations, invalid spec), wait for a Secret, end (status written, a
//! refused child reported), the finalizer around it, and what is forgotten at the end.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use kube::core::object::HasSpec;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::{Context, resource_labels};
use crate::Changes;
use crate::annotations::{self, ReadAnnotation};
use crate::conditions;
use crate::error::Error;
use crate::finalizer::{Cleanup, Deletion, with_finalizer};
use crate::pause;
use crate::status::{ReportedStatus, StatusResource};
use crate::validation::SpecRules;

/// What every pass of a kind starts with (see [`Context::pass`]): the annotations its
/// operator reads, and the phase of a resource refused before it ever ran.
#[derive(Clone, Copy, Debug)]
pub struct PassStart<P: 'static> {
    pub reads: &'static [ReadAnnotation],
    pub never_ran: P,
}

impl<P> PassStart<P> {
    pub const fn new(reads: &'static [ReadAnnotation], never_ran: P) -> Self {
        Self { reads, never_ran }
    }
}

impl<O> Context<O> {
    /// Writes `status` (when it differs from the stored one, see [`StatusWrites`]) and sets the
    /// resource's `operator_resource_ready` gauge from its Ready condition. Returns whether a
    /// write was made.
    pub async fn write_status<K, S>(&self, obj: &K, status: &S) -> Result<bool, Error>
    where
        K: StatusResource<S>,
        S: ReportedStatus,
    {
        let api: Api<K> = Api::namespaced(
            self.client.clone(),
            obj.meta().namespace.as_deref().unwrap_or_default(),
        );
        // A pass of a resource that is no longer paused drops the condition, whichever path
        // wrote its status.
        let paused_before = conditions::find(status.conditions(), pause::PAUSED).is_some();
        let resumed = (paused_before && !pause::requested(obj.meta())).then(|| {
            let mut resumed = status.clone();
            conditions::remove(resumed.conditions_mut(), pause::PAUSED);
            resumed
        });
        let status = resumed.as_ref().unwrap_or(status);
        let written = self.status_writes.patch(&api, obj, status).await?;
        let ready = conditions::is_true(status.conditions(), "Ready");
        self.metrics.set_resource_ready(resource_labels(obj), ready);
        if written && resumed.is_some() {
            let note = "resumed: annotation payments.io/paused is gone or \"false\"";
            self.events
                .normal(obj, crate::reason!("ReconciliationResumed"), "Resume", note)
                .await;
        }
        Ok(written)
    }

    /// Drops what this process keeps about a deleted resource: its children's apply records,
    /// backoff count, remembered status write, notices, event series and per-resource series.
    /// (The sweep does the same for resources deleted without a finalizer.)
    pub fn forget<K: Resource<DynamicType = ()>>(&self, obj: &K) {
        let uid = obj.meta().uid.clone().unwrap_or_default();
        self.children.forget_owner(&uid);
        self.failures().remove(&uid);
        self.status_writes.forget(&uid);
        self.notices.forget(&uid);
        self.events.forget(&uid);
        self.metrics.forget_resource(&resource_labels(obj));
    }

    /// Warns of the annotations of `obj` its operator ignores (see [`crate::annotations`]):
    /// one Warning event `AnnotationIgnored` per annotation value.
    pub async fn check_annotations<K>(&self, obj: &K, read: &[ReadAnnotation])
    where
        K: Resource<DynamicType = ()>,
    {
        let kind = K::kind(&());
        let read: Vec<ReadAnnotation> = read.iter().copied().chain([pause::READ]).collect();
        for ignored in annotations::ignored(obj.annotations(), &kind, &read) {
            let note = format!(
                "annotation {}={} is ignored: {}",
                ignored.key, ignored.value, ignored.why
            );
            self.warn_once(obj, &ignored.key, &ignored.value, note)
                .await;
        }
    }

    /// A Warning event `AnnotationIgnored` about annotation `key` at `value`, once per value
    /// (per process), for a value the operator decided it cannot act on.
    pub async fn warn_once<K>(&self, obj: &K, key: &str, value: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let uid = obj.meta().uid.as_deref().unwrap_or_default();
        if self.notices.first(uid, key, value) {
            self.events
                .warning(obj, crate::reason!("AnnotationIgnored"), "Annotate", note)
                .await;
        }
    }

    /// Reports a spec the operator cannot realise and touches nothing else: the status of
    /// [`crate::status::refused`] is written, and the error is returned, so the controller
    /// publishes it as one Warning event and retries at the resync interval.
    pub async fn refuse<K, S>(
        &self,
        obj: &K,
        error: Error,
        never_ran: S::Phase,
        now: jiff::Timestamp,
    ) -> Result<Action, Error>
    where
        K: StatusResource<S>,
        S: ReportedStatus,
    {
        let status =
            crate::status::refused(obj.status(), &error, obj.meta().generation, never_ran, now);
        self.write_status(obj, &status).await?;
        Err(error)
    }

    /// A pass of `obj`: [`Context::start_pass`] with its spec's own rules
    /// ([`SpecRules::errors`]), then `apply` at the pass's time, unless the start ended it.
    /// Every operator's reconcile runs its pipeline through this, so `apply` begins with the
    /// operator's own reads.
    pub async fn pass<K, S, A, AF>(
        self: Arc<Self>,
        obj: Arc<K>,
        start: PassStart<S::Phase>,
        apply: A,
    ) -> Result<Action, Error>
    where
        K: StatusResource<S> + HasSpec,
        K::Spec: SpecRules,
        S: ReportedStatus,
        A: FnOnce(Arc<K>, Arc<Self>, jiff::Timestamp) -> AF,
        AF: Future<Output = Result<Action, Error>>,
    {
        let now = self.now();
        let errors = obj.spec().errors(&obj.name_any());
        let started = self.start_pass(&*obj, start.reads, errors, start.never_ran, now);
        if let Some(end) = started.await {
            return end;
        }
        apply(obj, self, now).await
    }

    /// The start of every pass, before anything is read or written: a pass that would see
    /// its own last status write not yet in the cache waits for the resync (it would act on
    /// old news); the annotations of `obj` its operator ignores are warned of
    /// ([`Context::check_annotations`]); a paused resource gets its `Paused` status and
    /// nothing else ([`crate::pause`]); a spec with `errors` is refused ([`Context::refuse`]).
    /// `Some` ends the pass with what it holds.
    async fn start_pass<K, S>(
        &self,
        obj: &K,
        read: &[ReadAnnotation],
        errors: Vec<crate::FieldError>,
        never_ran: S::Phase,
        now: jiff::Timestamp,
    ) -> Option<Result<Action, Error>>
    where
        K: StatusResource<S>,
        S: ReportedStatus,
    {
        if self.status_writes.is_stale(obj) {
            return Some(Ok(self.resync()));
        }
        self.check_annotations(obj, read).await;
        if pause::requested(obj.meta()) {
            return Some(self.hold(obj, now).await);
        }
        if errors.is_empty() {
            return None;
        }
        Some(
            self.refuse(obj, Error::invalid_spec(errors), never_ran, now)
                .await,
        )
    }

    /// A paused resource's pass: `Paused=True` in status (one Normal event when it starts),
    /// no write to a child, and no resync: the annotation's removal is a change that wakes it.
    async fn hold<K, S>(&self, obj: &K, now: jiff::Timestamp) -> Result<Action, Error>
    where
        K: StatusResource<S>,
        S: ReportedStatus,
    {
        let already = obj
            .status()
            .is_some_and(|s| conditions::is_true(s.conditions(), pause::PAUSED));
        let status = pause::paused_status(obj.status(), obj.meta(), now);
        self.write_status(obj, &status).await?;
        if !already {
            let note = conditions::find(status.conditions(), pause::PAUSED)
                .map(|c| c.message.clone())
                .unwrap_or_default();
            self.events
                .normal(obj, crate::reason!("ReconciliationPaused"), "Pause", note)
                .await;
        }
        Ok(Action::await_change())
    }

    /// The end of every pass that applied: what it created, changed and pruned is announced
    /// (one Normal event per kind of change), and `status`, computed from what was applied
    /// and observed, is marked not ready when a child was refused, then written. The caller
    /// returns the refusal ([`Changes::refusal`]) as the pass's error once its bookkeeping is
    /// done.
    pub async fn end_pass<K, S>(
        &self,
        obj: &K,
        status: &mut S,
        changes: &Changes,
        now: jiff::Timestamp,
    ) -> Result<(), Error>
    where
        K: StatusResource<S>,
        S: ReportedStatus,
    {
        self.events.changes(obj, changes).await;
        if let Some(refusal) = changes.refusal() {
            let generation = obj.meta().generation;
            crate::error::set_not_ready(status.conditions_mut(), &refusal, generation, now);
        }
        self.write_status(obj, status).await.map(drop)
    }

    /// [`Context::pass`] while `obj` lives, after making sure it carries `finalizer`, and
    /// `cleanup` once it is being deleted (see [`crate::finalizer::with_finalizer`]); when the
    /// cleanup is done, what this process kept about `obj` goes with it ([`Context::forget`]).
    pub async fn finalized_pass<K, S, A, AF, C, CF>(
        self: Arc<Self>,
        obj: Arc<K>,
        finalizer: &str,
        start: PassStart<S::Phase>,
        apply: A,
        cleanup: C,
    ) -> Result<Action, Error>
    where
        K: StatusResource<S> + HasSpec + serde::Serialize,
        K::Spec: SpecRules,
        S: ReportedStatus,
        A: FnOnce(Arc<K>, Arc<Self>, jiff::Timestamp) -> AF,
        AF: Future<Output = Result<Action, Error>>,
        C: FnOnce(Arc<K>, Deletion, Arc<Self>) -> CF,
        CF: Future<Output = Result<Cleanup, Error>>,
    {
        let api = self.api_beside::<K, K>(&obj);
        let applying = self.clone();
        let cleaning = self;
        with_finalizer(
            &api,
            finalizer,
            obj,
            |obj| applying.pass(obj, start, apply),
            |obj, deletion| async move {
                let done = cleanup(obj.clone(), deletion, cleaning.clone()).await?;
                if done == Cleanup::Done {
                    cleaning.forget(&*obj);
                }
                Ok(done)
            },
        )
        .await
    }

    /// Secrets the spec names do not exist yet: a wait, not a failure. Nothing is deployed
    /// (pods could not start without them), the status says which Secrets, every one, and
    /// anything else wrong the caller found meanwhile (`waiting` is the phase of a resource
    /// that never ran), one Warning event says so when the wait starts, and the pass is
    /// repeated every [`SECRET_POLL`] until the Secrets are there.
    pub async fn wait_for_secret<K, S>(
        &self,
        obj: &K,
        missing: &[crate::FieldError],
        waiting: S::Phase,
        now: jiff::Timestamp,
    ) -> Result<Action, Error>
    where
        K: StatusResource<S>,
        S: ReportedStatus,
    {
        let waiting_already = obj
            .status()
            .and_then(|s| conditions::find(s.conditions(), "Ready"))
            .is_some_and(|c| c.reason == "SecretMissing");
        let missing = crate::error::SpecErrors(missing.to_vec()).to_string();
        let status = crate::status::not_ready(
            obj.status(),
            crate::reason!("SecretMissing"),
            missing.clone(),
            obj.meta().generation,
            waiting,
            now,
        );
        if !waiting_already {
            self.events
                .warning(obj, crate::reason!("SecretMissing"), "Wait", missing)
                .await;
        }
        self.write_status(obj, &status).await?;
        Ok(Action::requeue(SECRET_POLL))
    }
}

/// How often a resource waiting for a Secret looks again: the Secret is usually on its way
/// (cert-manager issues it), so the wait ends within this of its arrival, not a resync later.
pub const SECRET_POLL: Duration = Duration::from_secs(5);
