//! What every payments-engine operator shares: the controller wiring, apply and prune of
//! owned children, conditions, finalizers, status writes, events, the error type, and the
//! runtime every binary runs in ([`runtime`]: flags, leader election, admin endpoints,
//! metrics, telemetry, shutdown).
//!
//! An operator's reconcile reads as a pipeline over these pieces:
//! fetch → validate ([`error::FieldError`]) → build children (pure builders) →
//! [`apply::Children::apply`] and [`apply::Children::prune`] → compute status
//! ([`conditions`]) → [`status::patch_status_if_changed`].

pub mod admission;
pub mod annotations;
pub mod apply;
pub mod autoscaling;
pub mod builder;
pub mod conditions;
pub mod controller;
pub mod credentials;
pub mod descriptor;
pub mod drain;
pub mod duration;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod monitoring;
pub mod runtime;
pub mod status;
pub mod validation;
pub mod workload;

pub use apply::{
    Applied, Changes, ChildKinds, ChildPass, ChildWatch, ChildWatches, Children, Foreign,
    OperatorIdentity, OptionalChild, Prune,
};
pub use controller::{Backoff, Context, ControllerSettings, OperatorController, namespace_of};
pub use descriptor::OperatorDescriptor;
pub use error::{Error, FieldError, ReconcileError, RefusedChild, Result};

/// A source of the current time; operators take one so tests can move it (a trading day, a
/// canary pause, a rollout deadline) without sleeping.
pub type Clock = std::sync::Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    std::sync::Arc::new(jiff::Timestamp::now)
}
