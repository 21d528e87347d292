//! The TradingAlgorithm's admission webhook (seed 002's `validate.tradingalgorithm.fintech.io`)
//! over real HTTPS: every rule of `validate.rs` refused naming its field, the sample
//! allowed, warnings, and the autoscaler's defaults patched in (`tests/cases/admission.yaml`).

operator_harness::admission_tests!(trading_algorithm::OPERATOR);
