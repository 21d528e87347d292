//! The PaymentService's admission webhooks over real HTTPS: every rule of `validate.rs`
//! refused naming its field, the sample allowed, warnings, and seed defaults patched in.

use anyhow::Result;
use operator_harness::admission::{AdmissionHarness, merged};
use payment_service::OPERATOR;
use payment_service::crd::conversion::{V2, convert};
use serde_json::{Value, json};

/// The seed sample as the webhook receives it: in v2, the stored version, which the API
/// server converts a v1 request to before calling it (`matchPolicy: Equivalent`).
async fn harness() -> Result<(AdmissionHarness, Value)> {
    let (webhook, seed) = AdmissionHarness::with_sample(
        OPERATOR.admission,
        "payment-initiation-service",
        "PaymentService",
    )
    .await?;
    Ok((webhook, convert(seed, V2)?))
}

/// The sample's blue-green strategy replaced by a canary.
fn canary(canary: Value) -> Value {
    json!({"spec": {"deploymentStrategy": {"blueGreen": null, "canary": canary}}})
}

/// Each rule: a change to the sample that breaks it, and the field the refusal names.
fn broken() -> Vec<(Value, &'static str)> {
    let step = |w: i64| json!({"setWeight": w, "pause": {"duration": "5m"}});
    vec![
        (
            json!({"metadata": {"name": "a".repeat(60)}}),
            "metadata.name",
        ),
        (json!({"spec": {"version": "1.5 beta"}}), "spec.version"),
        (json!({"spec": {"image": "bad image"}}), "spec.image"),
        (json!({"spec": {"replicas": 1001}}), "spec.replicas"),
        (
            json!({"spec": {"autoscaling": {"maxReplicas": 1001}}}),
            "spec.autoscaling.maxReplicas",
        ),
        (
            json!({"spec": {"autoscaling": {"minReplicas": 30}}}),
            "spec.autoscaling.minReplicas",
        ),
        (
            json!({"spec": {"autoscaling": {"targetCPUUtilizationPercentage": 101}}}),
            "spec.autoscaling.targetCPUUtilizationPercentage",
        ),
        (
            json!({"spec": {"autoscaling": {"targetMemoryUtilizationPercentage": 0}}}),
            "spec.autoscaling.targetMemoryUtilizationPercentage",
        ),
        (
            json!({"spec": {"healthCheck": {"liveness": {"httpGet": {"path": "health"}}}}}),
            "spec.healthCheck.liveness.httpGet.path",
        ),
        (
            json!({"spec": {"healthCheck": {"readiness": {"httpGet": {"port": 0}}}}}),
            "spec.healthCheck.readiness.httpGet.port",
        ),
        (
            json!({"spec": {"healthCheck": {"liveness": {"initialDelaySeconds": 4000}}}}),
            "spec.healthCheck.liveness.initialDelaySeconds",
        ),
        (
            json!({"spec": {"healthCheck": {"readiness": {"periodSeconds": 0}}}}),
            "spec.healthCheck.readiness.periodSeconds",
        ),
        (
            json!({"spec": {"config": {"features": {"rateLimitPerSecond": null}}}}),
            "spec.config.features.rateLimitPerSecond",
        ),
        (
            json!({"spec": {"config": {"database": {"poolSize": 0}}}}),
            "spec.config.database.poolSize",
        ),
        (
            json!({"spec": {"monitoring": {"prometheus": {"port": 8080}}}}),
            "spec.monitoring.prometheus.port",
        ),
        (
            json!({"spec": {"monitoring": {"prometheus": {"path": "metrics"}}}}),
            "spec.monitoring.prometheus.path",
        ),
        (
            json!({"spec": {"monitoring": {"tracing": {"jaegerEndpoint": null}}}}),
            "spec.monitoring.tracing.jaegerEndpoint",
        ),
        (
            json!({"spec": {"monitoring": {"tracing": {"samplingRate": 1.5}}}}),
            "spec.monitoring.tracing.samplingRate",
        ),
        (
            json!({"spec": {"security": {"tls": {"secretName": null}}}}),
            "spec.security.tls.secretName",
        ),
        (
            json!({"spec": {"security": {"rbac": {"serviceAccountName": "Bad_Name"}}}}),
            "spec.security.rbac.serviceAccountName",
        ),
        (
            json!({"spec": {"deploymentStrategy": {"rollingUpdate": {}}}}),
            "spec.deploymentStrategy",
        ),
        (
            canary(json!({"steps": []})),
            "spec.deploymentStrategy.canary.steps",
        ),
        (
            canary(json!({"steps": (1..=11).map(|w| step(w * 9)).collect::<Vec<_>>()})),
            "spec.deploymentStrategy.canary.steps",
        ),
        (
            canary(json!({"steps": [step(10), step(5)]})),
            "spec.deploymentStrategy.canary.steps[1].setWeight",
        ),
        (
            canary(json!({"steps": [{"setWeight": 10, "pause": {"duration": "5 minutes"}}]})),
            "spec.deploymentStrategy.canary.steps[0].pause.duration",
        ),
        (
            canary(json!({"steps": [step(50)], "analysis": {"stepDeadlineSeconds": 0}})),
            "spec.deploymentStrategy.canary.analysis.stepDeadlineSeconds",
        ),
        (
            json!({"spec": {"deploymentStrategy": {"blueGreen": {"previewService": "payment-initiation-service"}}}}),
            "spec.deploymentStrategy.blueGreen.previewService",
        ),
        (
            json!({"spec": {"deploymentStrategy": {"blueGreen": {"previewService": "Preview_Svc"}}}}),
            "spec.deploymentStrategy.blueGreen.previewService",
        ),
        (
            json!({"spec": {"deploymentStrategy": {"progressDeadlineSeconds": 0}}}),
            "spec.deploymentStrategy.progressDeadlineSeconds",
        ),
        (
            json!({"spec": {"backup": {"schedule": "every day"}}}),
            "spec.backup.schedule",
        ),
        (
            json!({"spec": {"backup": {"timeZone": "Mars Olympus"}}}),
            "spec.backup.timeZone",
        ),
        (
            json!({"spec": {"backup": {"retention": 0}}}),
            "spec.backup.retention",
        ),
        (json!({"spec": {"replicas": "three"}}), "spec.replicas"),
    ]
}

#[tokio::test]
async fn every_rule_is_refused_at_admission_naming_its_field() -> Result<()> {
    let (webhook, sample) = harness().await?;
    webhook.refuses_each(&sample, &broken(), None).await?;
    let allowed = webhook.validate("CREATE", &sample, None).await?;
    assert!(allowed.warnings.is_empty(), "{:?}", allowed.warnings);
    Ok(())
}

#[tokio::test]
async fn a_single_replica_is_admitted_with_a_warning() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let single = merged(&sample, json!({"spec": {"replicas": 1}}));
    let answer = webhook.validate("CREATE", &single, None).await?;
    assert!(answer.allowed);
    assert_eq!(answer.warnings.len(), 1);
    assert!(
        answer.warnings[0].starts_with("spec.replicas is 1"),
        "{:?}",
        answer.warnings
    );
    Ok(())
}

#[tokio::test]
async fn defaults_are_patched_in_and_nothing_written_is_changed() -> Result<()> {
    let (webhook, sample) = harness().await?;
    let minimal = json!({
        "apiVersion": "payments.io/v2", "kind": "PaymentService",
        "metadata": {"name": "ledger", "namespace": "payments"},
        "spec": {"version": "2.0.0", "image": "registry.example/ledger:2.0.0",
            "autoscaling": {"maxReplicas": 4}},
    });
    let answer = webhook.mutate(&minimal).await?;
    assert!(answer.allowed);
    assert_eq!(
        answer.patched.map(|p| p["spec"].clone()),
        Some(
            json!({"version": "2.0.0", "image": "registry.example/ledger:2.0.0", "replicas": 1,
            "autoscaling": {"enabled": false, "maxReplicas": 4}})
        ),
    );

    let complete = webhook.mutate(&sample).await?;
    assert_eq!(
        complete.patched.as_ref(),
        Some(&sample),
        "the sample has nothing to add"
    );
    Ok(())
}
