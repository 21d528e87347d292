//! The SagaOrchestrator's admission webhooks: the spec's rules and every saga definition's
//! rules (`validate.rs`) at the door, and the spec's defaults written into the object.
//!
//! Reconcile still keeps the last valid definitions in force when an invalid one gets
//! through (the webhook down, or `failurePolicy` changed).

use operator_core::admission::{Admitted, Review, Verdict, check_spec};

use crate::crd::{SagaOrchestrator, SagaOrchestratorSpec};
use crate::validate;

pub const ADMISSION: &[Admitted] = &[Admitted {
    validate: |review, _client| Box::pin(std::future::ready(admit(review))),
    ..Admitted::of::<SagaOrchestrator>()
}];

/// The spec's rules, and the saga definitions' (which the reconcile checks on their own, to
/// keep running the last valid ones).
fn admit(review: &Review) -> Verdict {
    let mut verdict = check_spec::<SagaOrchestratorSpec>(review);
    if let Ok(spec) = review.spec::<SagaOrchestratorSpec>() {
        verdict
            .errors
            .extend(validate::validate_definitions(&spec.sagas));
    }
    verdict
}
