//! The conformance suite every operator passes, on the batch operator.

use crate::common::CONFORMANCE;

operator_harness::conformance_tests!(CONFORMANCE);
