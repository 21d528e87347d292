//! What every payments-engine operator shares: the controller wiring, apply and prune of
//! owned children, conditions, finalizers, status writes, events and the error type.
//!
//! An operator's reconcile reads as a pipeline over these pieces:
//! fetch → validate ([`error::FieldError`]) → build children (pure builders) →
//! [`apply::Children::apply`] and [`apply::Children::prune`] → compute status
//! ([`conditions`]) → [`status::patch_status_if_changed`].

pub mod apply;
pub mod conditions;
pub mod controller;
pub mod error;
pub mod events;
pub mod finalizer;
pub mod status;

pub use apply::{Applied, ChildWatch, Children, OperatorIdentity};
pub use controller::{Backoff, Context, ControllerSettings, OperatorController};
pub use error::{Error, FieldError, Result};
