//! The conformance suite every operator passes, on the clearing adapter operator.

mod common;

use common::CONFORMANCE;

operator_harness::conformance_tests!(CONFORMANCE);
