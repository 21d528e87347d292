//! The BatchProcessor's admission webhooks: `validate.rs`'s rules at the door, where runs
//! read and write kept fixed while a run is active, and the spec's defaults written into
//! the object.

use kube::core::admission::Operation;
use operator_core::CrdKind;
use operator_core::admission::{Admitted, Review, Verdict, check_spec, serde_defaults};

use crate::crd::{ActiveRun, BatchProcessorSpec};
use crate::validate;

pub const ADMISSION: &[Admitted] = &[Admitted {
    resource: CrdKind::of::<crate::crd::BatchProcessor>(),
    subresources: &[],
    validate: |review, _client| Box::pin(std::future::ready(admit(review))),
    default: Some(serde_defaults::<BatchProcessorSpec>),
}];

fn admit(review: &Review) -> Verdict {
    let verdict = check_spec(review, |name, spec: &BatchProcessorSpec| {
        (validate::validate(name, spec), validate::warnings(spec))
    });
    if !verdict.errors.is_empty() || review.operation != Operation::Update {
        return verdict;
    }
    let (Ok(new), Some(old)) = (
        review.spec::<BatchProcessorSpec>(),
        review.old_spec::<BatchProcessorSpec>(),
    ) else {
        return verdict;
    };
    let active: Option<ActiveRun> = review
        .old_object
        .as_ref()
        .and_then(|o| serde_json::from_value(o["status"]["activeRun"].clone()).ok());
    Verdict::from_errors(
        validate::validate_update(&old, &new, active.as_ref()),
        verdict.warnings,
    )
}
