//! The PaymentService's admission webhooks: `validate.rs`'s rules at the door, and the
//! spec's defaults written into the object.

use operator_core::admission::Admitted;

use crate::crd::PaymentService;

pub const ADMISSION: &[Admitted] = &[Admitted::of::<PaymentService>()];
