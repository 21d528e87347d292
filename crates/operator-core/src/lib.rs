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
pub mod crd_kind;
pub mod credentials;
pub mod dashboard;
pub mod defaults;
pub mod descriptor;
pub mod drain;
pub mod duration;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod http_client;
pub mod manifests;
pub mod metrics;
pub mod monitoring;
pub mod network_policy;
pub mod pause;
pub mod pod_security;
pub mod probes;
pub mod prometheus;
pub mod readiness;
pub mod runtime;
pub mod serving;
pub mod status;
pub mod tooling;
pub mod validation;

pub use apply::{
    Applied, Changes, ChildKinds, ChildPass, ChildWatch, ChildWatches, Children, Foreign,
    OperatorIdentity, OptionalChild, Prune,
};
pub use controller::{
    Backoff, Context, ControllerSettings, OperatorController, PassStart, namespace_of,
};
pub use crd_kind::CrdKind;
pub use descriptor::OperatorDescriptor;
pub use error::{Error, FieldError, ReconcileError, RefusedChild, Result};
/// The attributes every CRD type carries: `#[operator_core::schema]` on a type in a spec or
/// status, `#[operator_core::custom_resource(api = "group/version", kind = …, …)]` on a kind's
/// spec, `#[operator_core::resource_status(phase = …, conditions = "…")]` on its status.
pub use operator_macros::{custom_resource, resource_status, schema};

/// A source of the current time; operators take one so tests can move it (a trading day, a
/// canary pause, a rollout deadline) without sleeping. Called like a function: `(clock)()`.
#[derive(Clone)]
pub struct Clock(std::sync::Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>);

impl Clock {
    pub fn new(now: impl Fn() -> jiff::Timestamp + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(now))
    }
}

impl std::ops::Deref for Clock {
    type Target = dyn Fn() -> jiff::Timestamp + Send + Sync;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// The default clock is the wall clock.
impl Default for Clock {
    fn default() -> Self {
        Self::new(jiff::Timestamp::now)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", (self.0)())
    }
}
