//! Each admission rule on its bad case, starting from the sample.

use serde_json::json;

use super::*;
use crate::crd::tests_support::sample;
use crate::crd::{Autoscaling, ClearingAdapterSpec};
use operator_harness::messages;

fn fields(errors: &[FieldError]) -> Vec<&str> {
    validation::fields(errors)
}

fn with(change: impl FnOnce(&mut ClearingAdapterSpec)) -> Vec<FieldError> {
    let mut spec = sample().spec;
    change(&mut spec);
    spec.errors("card-clearing")
}

#[test]
fn the_sample_is_valid() {
    assert_eq!(sample().spec.errors("card-clearing"), Vec::new());
}

#[test]
fn at_least_one_partner() {
    let errors = with(|s| s.config.banking_partners.clear());
    assert_eq!(fields(&errors), ["spec.config.bankingPartners"]);
    assert!(messages(&errors).contains("at least one banking partner"));
}

#[test]
fn total_weight_above_zero() {
    let errors = with(|s| {
        for p in &mut s.config.banking_partners {
            p.weight = 0;
        }
    });
    assert_eq!(fields(&errors), ["spec.config.bankingPartners"]);
    assert!(messages(&errors).contains("total weight"));
}

#[test]
fn partner_names_unique() {
    let errors = with(|s| s.config.banking_partners[1].name = "acme-bank".into());
    assert_eq!(fields(&errors), ["spec.config.bankingPartners[1].name"]);
    assert!(messages(&errors).contains("unique"));
}

#[test]
fn endpoints_are_https() {
    let errors = with(|s| s.config.banking_partners[0].endpoint = "http://bank.example".into());
    assert_eq!(fields(&errors), ["spec.config.bankingPartners[0].endpoint"]);
}

#[test]
fn endpoints_with_credentials_are_refused_without_repeating_them() {
    for endpoint in [
        "https://user:PASS@bank.example/api",
        "https://bank.example/api?token=TOPSECRET",
        "https://bank.example/api?region=eu&api_key=TOPSECRET",
    ] {
        let errors = with(|s| s.config.banking_partners[0].endpoint = endpoint.into());
        assert_eq!(
            fields(&errors),
            ["spec.config.bankingPartners[0].endpoint"],
            "{endpoint}"
        );
        let text = messages(&errors);
        assert!(
            !text.contains("PASS") && !text.contains("TOPSECRET"),
            "{text}"
        );
    }
    let errors =
        with(|s| s.config.banking_partners[0].health_check_path = "/health?sig=abc".into());
    assert_eq!(
        fields(&errors),
        ["spec.config.bankingPartners[0].healthCheckPath"]
    );
}

#[test]
fn memory_request_specified() {
    let errors = with(|s| s.resources.requests = None);
    assert_eq!(fields(&errors), ["spec.resources.requests.memory"]);
    let errors = with(|s| {
        if let Some(r) = s.resources.requests.as_mut() {
            r.remove("memory");
        }
    });
    assert_eq!(fields(&errors), ["spec.resources.requests.memory"]);
}

#[test]
fn credential_headers_with_inline_values_are_refused() {
    for name in [
        "Authorization",
        "X-Api-Key",
        "X-Session-Token",
        "X-Client-Secret-Id",
        "X-Password",
        "X-Credentials",
        "X-Auth",
        "X-Signature",
        "ApiKey",
        "X-Apikey",
        "X_Api_Key",
        "Set-Cookie",
    ] {
        let errors = with(|s| {
            s.config.banking_partners[0]
                .headers
                .insert(name.into(), "inline".into());
        });
        assert_eq!(
            fields(&errors),
            [format!("spec.config.bankingPartners[0].headers.{name}").as_str()],
            "{name}"
        );
        assert!(messages(&errors).contains("Secret"), "{name}");
    }
    assert!(
        with(|s| {
            s.config.banking_partners[0]
                .headers
                .insert("X-Partner-Id".into(), "42".into());
        })
        .is_empty()
    );
    let errors = with(|s| {
        s.config.banking_partners[0]
            .headers
            .insert("Bad Header".into(), "x".into());
    });
    assert_eq!(
        fields(&errors),
        ["spec.config.bankingPartners[0].headers.Bad Header"]
    );
}

#[test]
fn durations_parse_and_are_positive() {
    let errors = with(|s| {
        s.config.timeout = "30".into();
        s.circuit_breaker.timeout = "0s".into();
        s.drain_timeout = "soon".into();
        s.config.health_check_interval = "1s".into();
    });
    assert_eq!(
        fields(&errors),
        [
            "spec.config.timeout",
            "spec.config.healthCheckInterval",
            "spec.circuitBreaker.timeout",
            "spec.drainTimeout"
        ]
    );
}

#[test]
fn retry_and_rate_limit_bounds() {
    let errors = with(|s| {
        if let Some(r) = s.config.retry_config.as_mut() {
            r.initial_backoff = "10s".into();
            r.max_retries = 11;
        }
        if let Some(l) = s.config.rate_limit.as_mut() {
            l.burst_size = 10;
        }
    });
    assert_eq!(
        fields(&errors),
        [
            "spec.config.retryConfig.maxRetries",
            "spec.config.retryConfig.initialBackoff",
            "spec.config.rateLimit.burstSize"
        ]
    );
}

#[test]
fn secret_references_are_names() {
    let errors = with(|s| {
        if let Some(auth) = s.config.banking_partners[0].auth.as_mut() {
            auth.secret_ref.name = "Not_A_Name".into();
        }
    });
    assert_eq!(
        fields(&errors),
        ["spec.config.bankingPartners[0].auth.secretRef.name"]
    );
}

#[test]
fn autoscaling_takes_business_metrics_and_a_sane_range() {
    let errors = with(|s| {
        s.autoscaling = Some(Autoscaling {
            min_replicas: Some(5),
            max_replicas: 4,
            target_cpu_utilization_percentage: None,
            metrics: vec![
                serde_json::from_value(json!({"type": "Object"})).unwrap_or_default(),
                serde_json::from_value(json!({"type": "Pods", "pods": {
                    "metric": {"name": "pending_clearing_requests"},
                    "target": {"type": "AverageValue", "averageValue": "50"}
                }}))
                .unwrap_or_default(),
            ],
            cooldown_period: "5m".into(),
        });
    });
    assert_eq!(
        fields(&errors),
        [
            "spec.autoscaling.maxReplicas",
            "spec.autoscaling.metrics[0]"
        ]
    );
}

#[test]
fn a_name_leaves_room_for_the_config_map_suffix() {
    let spec = sample().spec;
    assert_eq!(spec.errors(&"a".repeat(56)), Vec::new());
    assert_eq!(fields(&spec.errors(&"a".repeat(57))), ["metadata.name"]);
}

#[test]
fn scaling_down_under_high_load_is_refused_and_allowed_once_it_drops() {
    let mut spec = sample().spec;
    spec.autoscaling = None;
    spec.replicas = 2;
    let busy_cpu = Load {
        cpu_utilization: Some((92, 70)),
        autoscaler_replicas: Some(3),
    };
    let errors = validate_update(3, &spec, &busy_cpu);
    assert_eq!(fields(&errors), ["spec.replicas"]);
    assert!(messages(&errors).contains("92%"), "{}", messages(&errors));

    let raised = Load {
        cpu_utilization: Some((50, 70)),
        autoscaler_replicas: Some(6),
    };
    let errors = validate_update(3, &spec, &raised);
    assert_eq!(fields(&errors), ["spec.replicas"]);
    // The figures are in the refusal: what the autoscaler wants, and the CPU.
    assert!(
        messages(&errors).contains("wants 6 pods") && messages(&errors).contains("50%"),
        "{}",
        messages(&errors)
    );

    // Without an autoscaler nothing measures load: pods still stopping after the user's own
    // scale-down (5 to 3, then 3 to 2) are not load.
    let no_autoscaler = Load::default();
    assert_eq!(validate_update(3, &spec, &no_autoscaler), Vec::new());

    let quiet = Load {
        cpu_utilization: Some((40, 70)),
        autoscaler_replicas: Some(3),
    };
    assert_eq!(validate_update(3, &spec, &quiet), Vec::new());
    // Scaling up is never refused.
    spec.replicas = 5;
    assert_eq!(validate_update(3, &spec, &busy_cpu), Vec::new());
}

#[test]
fn lowering_the_autoscaler_floor_counts_as_a_scale_down() {
    let mut spec = sample().spec;
    if let Some(a) = spec.autoscaling.as_mut() {
        a.min_replicas = Some(2);
    }
    let busy = Load {
        cpu_utilization: Some((95, 70)),
        autoscaler_replicas: Some(3),
    };
    assert_eq!(
        fields(&validate_update(3, &spec, &busy)),
        ["spec.autoscaling.minReplicas"]
    );
}

#[test]
fn a_drain_is_bounded() {
    let errors = with(|s| s.drain_timeout = "1000000h".into());
    assert_eq!(fields(&errors), ["spec.drainTimeout"]);
    assert!(messages(&errors).contains("at most 1h"));
    assert!(with(|s| s.drain_timeout = "1h".into()).is_empty());
    assert_eq!(
        fields(&with(|s| s.drain_timeout = "0s".into())),
        ["spec.drainTimeout"]
    );
}
