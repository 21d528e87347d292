//! The BatchProcessor's admission webhooks: `validate.rs`'s rules at the door and the spec's
//! defaults written into the object. Where runs read and write is kept fixed while a run is
//! active by the CRD's own transition rules (`crd.rs`), which hold with the webhook down.

use operator_core::admission::Admitted;

use crate::crd::BatchProcessor;

pub const ADMISSION: &[Admitted] = &[Admitted::of::<BatchProcessor>()];
