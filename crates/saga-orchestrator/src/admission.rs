//! The SagaOrchestrator's admission webhooks: the spec's rules and every saga definition's
//! rules (`validate.rs`) at the door, and the spec's defaults written into the object.
//!
//! Reconcile still keeps the last valid definitions in force when an invalid one gets
//! through (the webhook down, or `failurePolicy` changed).

use operator_core::CrdKind;
use operator_core::admission::{Admitted, check_spec, serde_defaults};

use crate::crd::SagaOrchestratorSpec;
use crate::validate;

pub const ADMISSION: &[Admitted] = &[Admitted {
    resource: CrdKind::of::<crate::crd::SagaOrchestrator>(),
    subresources: &[],
    validate: |review, _client| {
        Box::pin(std::future::ready(check_spec(
            review,
            |name, spec: &SagaOrchestratorSpec| {
                let mut errors = validate::validate(name, spec);
                errors.extend(validate::validate_definitions(&spec.sagas));
                (errors, validate::warnings(spec))
            },
        )))
    },
    default: Some(serde_defaults::<SagaOrchestratorSpec>),
}];
