//! The conformance suite every operator passes, on the batch operator.

mod common;

use common::CONFORMANCE;

operator_harness::conformance_tests!(CONFORMANCE);
