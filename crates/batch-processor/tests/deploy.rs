//! The binary as it ships: `--version` names it, and the config file in deploy/batch-processor is
//! one it reads.

operator_harness::shipped_binary_test!(
    batch_processor::OPERATOR,
    "batch-processor-operator",
    |config| {
        assert!(config.workloads.default_resources.is_some());
    }
);
