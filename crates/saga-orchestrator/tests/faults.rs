//! The conformance suite every operator passes, on the saga orchestrator operator.

use crate::common::CONFORMANCE;

operator_harness::conformance_tests!(CONFORMANCE);
