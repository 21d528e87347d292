//! The binary as it ships: `--version` names it, and the config file in deploy/saga-orchestrator is
//! one it reads.

operator_harness::shipped_binary_test!(
    saga_orchestrator::OPERATOR,
    "saga-orchestrator-operator",
    |config| {
        assert!(config.workloads.default_resources.is_some());
    }
);
