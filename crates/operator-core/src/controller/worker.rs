//! One reconcile of one object, as every controller runs it: wait in the work queue for one
//! of the controller's workers, run the operator's reconcile in its span with a panic caught,
//! and count, log and publish how it ended.
//!
//! The queue is ours rather than kube's (kube's controller runs unbounded and hands each due
//! object here) so that its depth and waits are measured as controller-runtime's
//! `workqueue_*` series. kube still never hands over an object that is queued or running.

use std::any::Any;
use std::fmt::Debug;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kube::Resource;
use kube::runtime::controller::Action;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use super::Context;
use crate::conditions::Reason;
use crate::error::ReconcileError;
use crate::metrics::ReconcileResult;

/// A shutdown signal many waiters can await.
pub(super) type Stopping = Shared<BoxFuture<'static, ()>>;

/// How a reconcile failed: the operator's error, or a panic (caught, so one bad object cannot
/// take the other objects' reconciles down with it).
#[derive(Debug, thiserror::Error)]
pub enum Failure<E> {
    #[error(transparent)]
    Returned(E),
    #[error(
        "the reconcile panicked ({0}); it is retried with backoff. This is a defect in the operator: report it with the operator's logs"
    )]
    Panicked(String),
}

impl<E: ReconcileError> ReconcileError for Failure<E> {
    fn is_spec_error(&self) -> bool {
        match self {
            Self::Returned(error) => error.is_spec_error(),
            Self::Panicked(_) => false,
        }
    }

    fn reason(&self) -> Reason {
        match self {
            Self::Returned(error) => error.reason(),
            Self::Panicked(_) => crate::reason!("ReconcilePanicked"),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string())
}

/// The workers of one controller.
pub(super) struct Workers {
    pub(super) controller: String,
    pub(super) permits: Arc<Semaphore>,
    pub(super) stopping: Option<Stopping>,
    /// Reconcile only while this says the replica leads (`None`: always).
    pub(super) leading: Option<watch::Receiver<bool>>,
}

impl Workers {
    /// Reconciles `obj` once a worker is free. Each reconcile runs in a span (`controller`,
    /// `object`, `namespace`, `reconcile_id`) and is counted in the `controller_runtime_*` and
    /// `workqueue_*` metrics. Every error is logged and, with its reason, published as a
    /// Warning event on the object.
    pub(super) async fn reconcile<K, O, F, Fut, E>(
        &self,
        obj: Arc<K>,
        ctx: Arc<Context<O>>,
        reconcile: &F,
    ) -> Result<Action, Failure<E>>
    where
        K: Resource<DynamicType = ()> + Send + Sync + 'static,
        O: Send + Sync + 'static,
        F: Fn(Arc<K>, Arc<Context<O>>) -> Fut,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: ReconcileError,
    {
        if self.leading.as_ref().is_some_and(|l| !*l.borrow()) {
            // The leader reconciles; this replica only keeps its caches.
            return Ok(Action::await_change());
        }
        let queued = ctx.metrics.queued(&self.controller);
        let permit = self.permits.clone().acquire_owned();
        let permit = match &self.stopping {
            Some(stopping) => tokio::select! {
                biased;
                () = stopping.clone() => None,
                permit = permit => permit.ok(),
            },
            None => permit.await.ok(),
        };
        let Some(_permit) = permit else {
            // Shutting down: what is still queued is the next leader's.
            return Ok(Action::await_change());
        };
        let span = tracing::info_span!(
            "reconcile",
            controller = %self.controller,
            object = %obj.meta().name.as_deref().unwrap_or_default(),
            namespace = %obj.meta().namespace.as_deref().unwrap_or_default(),
            reconcile_id = %format!("{:016x}", rand::random::<u64>()),
        );
        self.run(obj, ctx, reconcile, queued).instrument(span).await
    }

    async fn run<K, O, F, Fut, E>(
        &self,
        obj: Arc<K>,
        ctx: Arc<Context<O>>,
        reconcile: &F,
        queued: crate::metrics::Queued,
    ) -> Result<Action, Failure<E>>
    where
        K: Resource<DynamicType = ()> + Send + Sync + 'static,
        O: Send + Sync + 'static,
        F: Fn(Arc<K>, Arc<Context<O>>) -> Fut,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: ReconcileError,
    {
        let name = &self.controller;
        let uid = obj.meta().uid.clone().unwrap_or_default();
        let timer = queued.start();
        // Boxed, so a queued object holds a few bytes rather than the whole reconcile's state.
        let pass = Box::pin(reconcile(obj.clone(), ctx.clone()));
        let result = match AssertUnwindSafe(pass).catch_unwind().await {
            Ok(result) => result.map_err(Failure::Returned),
            Err(payload) => {
                ctx.metrics.record_panic(name);
                let message = panic_message(&*payload);
                tracing::error!(panic = %message, "reconcile panicked");
                Err(Failure::Panicked(message))
            }
        };
        drop(timer);
        let result = result.map(|action| {
            ctx.metrics.record_result(name, ctx.classify(&action));
            ctx.spread(action)
        });
        match &result {
            Ok(_) => {
                let ended = ctx.succeeded(&uid);
                if ended > 0 {
                    let note = format!("reconciled again after {ended} failed attempts");
                    ctx.events
                        .normal(&*obj, crate::reason!("Recovered"), "Reconcile", note)
                        .await;
                }
            }
            Err(error) => {
                ctx.metrics.record_result(name, ReconcileResult::Error);
                ctx.metrics
                    .record_error_reason(name, error.reason().as_str());
                tracing::warn!(reason = error.reason().as_str(), %error, "reconcile failed");
                // A spec error is the user's to fix: say so every time it is found (events
                // fold repeats). A transient one: once, when it starts, and once more when it
                // clears.
                let failures = ctx.failed(&uid);
                if error.is_spec_error() || failures == 1 {
                    ctx.events
                        .warning(&*obj, error.reason(), "Reconcile", error.to_string())
                        .await;
                }
            }
        }
        result
    }
}

impl Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("controller", &self.controller)
            .field("free", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}
