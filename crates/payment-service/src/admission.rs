//! The PaymentService's admission webhooks: `validate.rs`'s rules at the door, and the
//! spec's defaults written into the object.

use operator_core::CrdKind;
use operator_core::admission::{Admitted, check_spec, serde_defaults};

use crate::crd::PaymentServiceSpec;
use crate::validate;

pub const ADMISSION: &[Admitted] = &[Admitted {
    resource: CrdKind::of::<crate::crd::PaymentService>(),
    subresources: &[],
    validate: |review, _client| {
        Box::pin(std::future::ready(check_spec(
            review,
            |name, spec: &PaymentServiceSpec| {
                (validate::validate(name, spec), validate::warnings(spec))
            },
        )))
    },
    default: Some(serde_defaults::<PaymentServiceSpec>),
}];
