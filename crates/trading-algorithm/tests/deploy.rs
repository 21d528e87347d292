//! The binary as it ships: `--version` names it, and the config file in deploy/trading-algorithm is
//! one it reads.

operator_harness::shipped_binary_test!(trading_algorithm::OPERATOR, "trading-operator", |config| {
    assert!(config.workloads.default_resources.is_some());
});
