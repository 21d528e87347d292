//! The PaymentService's admission webhooks over real HTTPS: every rule of `validate.rs`
//! refused naming its field, the sample allowed, warnings, and seed defaults patched in
//! (`tests/cases/admission.yaml`), on the sample converted to v2 as the API server does.

operator_harness::admission_tests!(payment_service::OPERATOR);
