use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::crd::{
    AnalysisMetric, BlueGreen, Canary, CanaryAnalysis, CanaryStep, Pause, RollingUpdate,
};

fn steps() -> impl Strategy<Value = Vec<CanaryStep>> {
    prop::collection::btree_set(1..=100i32, 0..=4).prop_flat_map(|weights| {
        let n = weights.len();
        (
            Just(weights.into_iter().collect::<Vec<_>>()),
            prop::collection::vec(prop::option::of(1..=90u32), n),
        )
            .prop_map(|(weights, pauses)| {
                weights
                    .into_iter()
                    .zip(pauses)
                    .map(|(set_weight, pause)| CanaryStep {
                        set_weight,
                        pause: pause.map(|m| Pause {
                            duration: format!("{m}m"),
                        }),
                    })
                    .collect()
            })
    })
}

fn v1_strategy() -> impl Strategy<Value = v1::DeploymentStrategy> {
    (
        prop_oneof![
            Just(StrategyType::RollingUpdate),
            Just(StrategyType::Canary),
            Just(StrategyType::BlueGreen)
        ],
        steps(),
        prop::option::of(1..=86400i32),
    )
        .prop_map(|(type_, mut canary_steps, progress_deadline_seconds)| {
            if type_ == StrategyType::Canary && canary_steps.is_empty() {
                canary_steps.push(CanaryStep {
                    set_weight: 50,
                    pause: None,
                });
            }
            v1::DeploymentStrategy {
                type_,
                canary_steps,
                progress_deadline_seconds,
            }
        })
}

fn v2_strategy() -> impl Strategy<Value = DeploymentStrategy> {
    let metric = ("[a-z]{1,8}", 0.0..1.0f64, prop::option::of(0..=3i32)).prop_map(
        |(name, threshold, failure_limit)| AnalysisMetric {
            query: format!("payment:success_rate{{service=\"{{{{service}}}}\",m=\"{name}\"}}"),
            name,
            success_condition: format!("result >= {threshold:.2}"),
            interval: Some("30s".into()),
            failure_limit,
        },
    );
    let analysis = (
        prop::option::of(1..=3600i32),
        prop::option::of(prop::collection::vec(metric, 0..3)),
    );
    let canary = (steps(), prop::option::of(analysis)).prop_map(|(mut steps, analysis)| {
        if steps.is_empty() {
            steps.push(CanaryStep {
                set_weight: 100,
                pause: None,
            });
        }
        Canary {
            steps,
            analysis: analysis.map(|(step_deadline_seconds, metrics)| CanaryAnalysis {
                step_deadline_seconds,
                metrics,
            }),
        }
    });
    let blue_green = (
        prop::option::of("[a-z][a-z0-9-]{0,20}[a-z0-9]"),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(preview_service, auto_promote)| BlueGreen {
            preview_service,
            auto_promote,
        });
    let surge = prop::option::of(prop_oneof![
        (0..=20i32).prop_map(IntOrString::Int),
        (1..=100u32).prop_map(|p| IntOrString::String(format!("{p}%"))),
    ]);
    let member = prop_oneof![
        surge.prop_map(|max_surge| DeploymentStrategy {
            rolling_update: Some(RollingUpdate { max_surge }),
            ..DeploymentStrategy::default()
        }),
        canary.prop_map(|c| DeploymentStrategy {
            canary: Some(c),
            ..DeploymentStrategy::default()
        }),
        blue_green.prop_map(|b| DeploymentStrategy {
            blue_green: Some(b),
            ..DeploymentStrategy::default()
        }),
    ];
    (member, prop::option::of(1..=86400i32)).prop_map(|(mut s, deadline)| {
        s.progress_deadline_seconds = deadline;
        s
    })
}

/// A whole object around `strategy`: other spec fields (one this operator does not know),
/// and sometimes annotations and labels of the user's own.
fn object(api_version: &str, strategy: Option<Value>, extra: bool) -> Value {
    let mut object = json!({
        "apiVersion": api_version, "kind": "PaymentService",
        "metadata": {"name": "ledger", "namespace": "payments", "uid": "u-1", "resourceVersion": "7", "generation": 3},
        "spec": {"version": "2.0.0", "image": "registry.example/ledger:2.0.0", "replicas": 3,
            "aFieldFromALaterRelease": {"kept": true}},
        "status": {"phase": "Running", "currentVersion": "2.0.0"},
    });
    if let Some(strategy) = strategy {
        object["spec"]["deploymentStrategy"] = strategy;
    }
    if extra {
        object["metadata"]["annotations"] = json!({"team": "payments"});
        object["metadata"]["labels"] = json!({"tier": "critical"});
    }
    object
}

proptest! {
    /// v1 → v2 → v1 gives back exactly the v1 object, whatever its strategy says.
    #[test]
    fn v1_round_trips_through_v2(strategy in prop::option::of(v1_strategy()), extra in any::<bool>()) {
        let original = object(V1, strategy.map(|s| json!(s)), extra);
        let v2 = convert(original.clone(), V2).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&v2["apiVersion"], V2);
        prop_assert!(serde_json::from_value::<Option<DeploymentStrategy>>(v2["spec"]["deploymentStrategy"].clone()).is_ok());
        let back = convert(v2, V1).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, original);
    }

    /// v2 → v1 → v2 gives back exactly the v2 object, the fields v1 lacks included.
    #[test]
    fn v2_round_trips_through_v1(strategy in prop::option::of(v2_strategy()), extra in any::<bool>()) {
        let original = object(V2, strategy.map(|s| json!(s)), extra);
        let v1 = convert(original.clone(), V1).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&v1["apiVersion"], V1);
        prop_assert!(serde_json::from_value::<Option<v1::DeploymentStrategy>>(v1["spec"]["deploymentStrategy"].clone()).is_ok());
        let back = convert(v1, V2).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, original);
    }
}

#[test]
fn the_seed_sample_converts_as_a_user_reads_it() -> Result<(), ConversionError> {
    let seed = object(
        V1,
        Some(
            json!({"type": "BlueGreen", "canarySteps": [{"setWeight": 10, "pause": {"duration": "5m"}}]}),
        ),
        false,
    );
    let v2 = convert(seed, V2)?;
    assert_eq!(v2["spec"]["deploymentStrategy"], json!({"blueGreen": {}}));
    assert_eq!(
        v2["metadata"]["annotations"][CONVERSION_DATA],
        r#"{"v1":{"canarySteps":[{"pause":{"duration":"5m"},"setWeight":10}]}}"#,
        "the steps a blue-green strategy ignores are kept for v1 readers"
    );
    Ok(())
}

#[test]
fn a_v1_edit_keeps_what_only_v2_says() -> Result<(), ConversionError> {
    let v2 = object(
        V2,
        Some(
            json!({"blueGreen": {"previewService": "ledger-preview", "autoPromote": false},
            "progressDeadlineSeconds": 300}),
        ),
        false,
    );
    let mut v1 = convert(v2, V1)?;
    assert_eq!(
        v1["spec"]["deploymentStrategy"],
        json!({"type": "BlueGreen", "progressDeadlineSeconds": 300})
    );
    // A v1 client changes the deadline; the preview Service and the manual promotion stay.
    v1["spec"]["deploymentStrategy"]["progressDeadlineSeconds"] = json!(120);
    let back = convert(v1, V2)?;
    assert_eq!(
        back["spec"]["deploymentStrategy"],
        json!({"blueGreen": {"previewService": "ledger-preview", "autoPromote": false},
            "progressDeadlineSeconds": 120})
    );
    assert!(back["metadata"].get("annotations").is_none());
    Ok(())
}

#[test]
fn unknown_versions_and_bad_strategies_are_refused_with_the_reason() {
    let object = object("payments.io/v3", None, false);
    assert!(matches!(
        convert(object, V1),
        Err(ConversionError::Version { .. })
    ));
    let bad = json!({"apiVersion": V1, "kind": "PaymentService", "metadata": {"name": "x"},
        "spec": {"deploymentStrategy": {"type": "Sideways"}}});
    let error = convert(bad, V2)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.starts_with("spec.deploymentStrategy is not a valid v1 strategy"),
        "{error}"
    );
}
