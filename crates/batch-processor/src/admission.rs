//! The BatchProcessor's admission webhooks: `validate.rs`'s rules at the door, where runs
//! read and write kept fixed while a run is active, and the spec's defaults written into
//! the object.

use kube::core::admission::Operation;
use operator_core::admission::{Admitted, Review, Verdict, check_spec};

use crate::crd::{ActiveRun, BatchProcessor, BatchProcessorSpec};
use crate::validate;

pub const ADMISSION: &[Admitted] = &[Admitted {
    validate: |review, _client| Box::pin(std::future::ready(admit(review))),
    ..Admitted::of::<BatchProcessor>()
}];

fn admit(review: &Review) -> Verdict {
    let verdict = check_spec::<BatchProcessorSpec>(review);
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
