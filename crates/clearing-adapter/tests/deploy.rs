//! The binary as it ships: `--version` names it, and the config file in deploy/clearing-adapter is
//! one it reads.

operator_harness::shipped_binary_test!(
    clearing_adapter::OPERATOR,
    "clearing-adapter-operator",
    |config| {
        let settings = config.own.get::<clearing_adapter::Settings>();
        assert!(
            settings.partner_health_checks,
            "checks are on in production"
        );
        let image = settings.image.as_deref();
        assert_eq!(
            image,
            Some("ghcr.io/payments-engine/clearing-adapter:0.1.0")
        );
    }
);
