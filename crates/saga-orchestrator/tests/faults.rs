//! The conformance suite every operator passes, on the saga orchestrator operator.

mod common;

use common::CONFORMANCE;

operator_harness::conformance_tests!(CONFORMANCE);
