//! One pure builder per child kind: the `TradingAlgorithm` (and the operator's workload
//! defaults) in, the desired object out. No client, no clock.

pub mod config_map;
pub mod deployment;
pub mod hpa;
pub mod network_policy;
pub mod service;

use std::collections::BTreeMap;

use kube::ResourceExt;
use operator_core::builder::{Labels, WorkloadDefaults, app_selector};

use crate::crd::TradingAlgorithm;

/// Port the algorithm listens on inside its pod.
pub const ALGORITHM_PORT: i32 = 8080;

pub fn deployment_name(algorithm: &str) -> String {
    format!("{algorithm}-deployment")
}

pub fn config_name(algorithm: &str) -> String {
    format!("{algorithm}-config")
}

pub fn service_name(algorithm: &str) -> String {
    format!("{algorithm}-service")
}

pub fn hpa_name(algorithm: &str) -> String {
    format!("{algorithm}-hpa")
}

pub fn network_policy_name(algorithm: &str) -> String {
    format!("{algorithm}-network")
}

/// The ConfigMap the algorithm writes its trades and P&L to (see `report`).
pub fn report_name(algorithm: &str) -> String {
    format!("{algorithm}-report")
}

/// Labels seed 002 puts on every child (the standard `app.kubernetes.io/*` labels are added
/// when applied), after the operator's configured `defaultLabels`.
pub fn child_labels(
    ta: &TradingAlgorithm,
    defaults: &WorkloadDefaults,
) -> BTreeMap<String, String> {
    defaults.labels([
        ("fintech.io/component", "trading-algorithm".to_string()),
        ("fintech.io/instance", ta.name_any()),
    ])
}

/// The label that selects an algorithm's pods.
pub fn selector(ta: &TradingAlgorithm) -> Labels {
    app_selector(&ta.name_any())
}

/// Everything one `TradingAlgorithm` should have, as built from its spec.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredChildren {
    pub config: k8s_openapi::api::core::v1::ConfigMap,
    pub deployment: k8s_openapi::api::apps::v1::Deployment,
    pub service: k8s_openapi::api::core::v1::Service,
    /// Absent while suspended: an autoscaler would scale the algorithm back up.
    pub hpa: Option<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>,
    pub network_policy: k8s_openapi::api::networking::v1::NetworkPolicy,
}

/// Builds every child. `suspended` scales the algorithm to zero and drops the autoscaler.
pub fn desired_children(
    ta: &TradingAlgorithm,
    defaults: &WorkloadDefaults,
    suspended: bool,
) -> DesiredChildren {
    let config = config_map::desired_config(ta, defaults);
    let config_hash = config_map::config_hash(&config);
    DesiredChildren {
        deployment: deployment::desired_deployment(ta, defaults, &config_hash, suspended),
        service: service::desired_service(ta, defaults),
        hpa: (!suspended).then(|| hpa::desired_hpa(ta, defaults)),
        network_policy: network_policy::desired_network_policy(ta, defaults),
        config,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crd::*;
    use proptest::prelude::*;

    /// Seed 002's `momentum-trader-prod`.
    pub fn sample_spec() -> TradingAlgorithmSpec {
        TradingAlgorithmSpec {
            market_data: MarketData {
                sources: vec!["NYSE".into(), "NASDAQ".into()],
                update_frequency: "50ms".into(),
                symbols: Some(
                    ["AAPL", "GOOGL", "MSFT", "AMZN", "TSLA"]
                        .map(String::from)
                        .to_vec(),
                ),
            },
            risk_limits: RiskLimits {
                max_position_size: 5_000_000,
                daily_loss_limit: 100_000,
                stop_loss_percentage: Some(0.03),
            },
            scaling_policy: ScalingPolicy {
                min_replicas: 3,
                max_replicas: 15,
                target_cpu_utilization: Some(60),
                scale_up_policy: Some(ScaleUpPolicy::Moderate),
            },
            trading_strategy: Some(TradingStrategy {
                algorithm: Some(Algorithm::Momentum),
                parameters: Some(BTreeMap::from([
                    ("lookbackPeriod".to_string(), "10m".to_string()),
                    ("momentumThreshold".to_string(), "0.015".to_string()),
                    ("riskAdjustment".to_string(), "moderate".to_string()),
                ])),
            }),
            image: None,
            suspend: None,
            health_check: None,
            service_account_name: None,
        }
    }

    pub fn sample() -> TradingAlgorithm {
        let mut ta = TradingAlgorithm::new("momentum-trader-prod", sample_spec());
        ta.metadata.namespace = Some("trading-platform".into());
        ta.metadata.uid = Some("uid-1".into());
        ta
    }

    #[test]
    fn children_have_the_seeds_names_and_labels() {
        let children = desired_children(&sample(), &WorkloadDefaults::default(), false);
        assert_eq!(
            children.deployment.metadata.name.as_deref(),
            Some("momentum-trader-prod-deployment")
        );
        assert_eq!(
            children.config.metadata.name.as_deref(),
            Some("momentum-trader-prod-config")
        );
        assert_eq!(
            children.service.metadata.name.as_deref(),
            Some("momentum-trader-prod-service")
        );
        assert_eq!(
            children
                .hpa
                .as_ref()
                .and_then(|h| h.metadata.name.as_deref()),
            Some("momentum-trader-prod-hpa")
        );
        for labels in [
            &children.deployment.metadata.labels,
            &children.config.metadata.labels,
            &children.service.metadata.labels,
            &children
                .hpa
                .as_ref()
                .and_then(|h| h.metadata.labels.clone()),
        ] {
            let labels = labels.clone().unwrap_or_default();
            assert_eq!(labels["fintech.io/component"], "trading-algorithm");
            assert_eq!(labels["fintech.io/instance"], "momentum-trader-prod");
        }
    }

    #[test]
    fn suspension_drops_the_autoscaler_and_scales_to_zero() {
        let children = desired_children(&sample(), &WorkloadDefaults::default(), true);
        assert!(children.hpa.is_none());
        assert_eq!(children.deployment.spec.and_then(|s| s.replicas), Some(0));
    }

    fn arbitrary_spec() -> impl Strategy<Value = TradingAlgorithmSpec> {
        let name = "[A-Z]{1,6}";
        (
            proptest::collection::vec(name, 1..4),
            (1u32..5000, prop_oneof![Just("ms"), Just("s"), Just("m")]),
            proptest::option::of(proptest::collection::vec(name, 0..6)),
            (
                1000i64..=10_000_000,
                10_000i64..=100_000_000,
                proptest::option::of(0.01f64..=0.5),
            ),
            (1i32..=10, 0i32..=90, proptest::option::of(10i32..=90)),
            proptest::option::of(prop_oneof![
                Just(ScaleUpPolicy::Aggressive),
                Just(ScaleUpPolicy::Moderate),
                Just(ScaleUpPolicy::Conservative)
            ]),
            proptest::option::of(proptest::collection::btree_map(
                "[a-zA-Z][-._a-zA-Z0-9]{0,20}",
                ".{0,30}",
                0..5,
            )),
            proptest::option::of("[a-z]{1,10}(:[0-9]{1,3})?"),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(
                |(
                    sources,
                    (n, unit),
                    symbols,
                    (max_pos, loss, stop),
                    (min, extra, cpu),
                    policy,
                    parameters,
                    image,
                    suspend,
                )| {
                    TradingAlgorithmSpec {
                        market_data: MarketData {
                            sources,
                            update_frequency: format!("{n}{unit}"),
                            symbols,
                        },
                        risk_limits: RiskLimits {
                            max_position_size: max_pos,
                            daily_loss_limit: loss,
                            stop_loss_percentage: stop,
                        },
                        scaling_policy: ScalingPolicy {
                            min_replicas: min,
                            max_replicas: (min + extra).min(100),
                            target_cpu_utilization: cpu,
                            scale_up_policy: policy,
                        },
                        trading_strategy: Some(TradingStrategy {
                            algorithm: Some(Algorithm::MeanReversion),
                            parameters,
                        }),
                        image,
                        suspend,
                        health_check: None,
                        service_account_name: None,
                    }
                },
            )
    }

    proptest! {
        /// No spec that passes validation can make a builder panic, and every child it
        /// builds keeps the invariants the API server and the operator rely on.
        #[test]
        fn valid_specs_build_consistent_children(spec in arbitrary_spec(), suspended in any::<bool>()) {
            let mut ta = TradingAlgorithm::new("algo", spec);
            ta.metadata.namespace = Some("ns".into());
            prop_assume!(operator_core::validation::SpecRules::errors(&ta.spec, "algo").is_empty());
            let children = desired_children(&ta, &WorkloadDefaults::default(), suspended);
            let deployment_spec = children.deployment.spec.clone().unwrap_or_default();
            let selector = deployment_spec.selector.match_labels.clone().unwrap_or_default();
            let pod_labels = deployment_spec.template.metadata.and_then(|m| m.labels).unwrap_or_default();
            prop_assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)), "the selector selects the pods");
            let env: Vec<String> = deployment_spec.template.spec.unwrap_or_default().containers[0]
                .env.clone().unwrap_or_default().into_iter().map(|e| e.name).collect();
            let mut unique = env.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), env.len(), "environment variable names are unique");
            if let Some(hpa) = children.hpa {
                let spec = hpa.spec.unwrap_or_default();
                prop_assert!(spec.min_replicas.unwrap_or(1) <= spec.max_replicas);
            }
            prop_assert_eq!(suspended, deployment_spec.replicas == Some(0));
        }
    }
}
