//! The BatchProcessor's admission webhooks over real HTTPS: every rule of `validate.rs`
//! refused naming its field, warnings, and the spec's defaults patched in.

use batch_processor::OPERATOR;

operator_harness::admission_tests!(OPERATOR);
