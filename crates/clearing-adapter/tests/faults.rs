//! The conformance suite every operator passes, on the clearing adapter operator.

use crate::common::CONFORMANCE;

operator_harness::conformance_tests!(CONFORMANCE);
