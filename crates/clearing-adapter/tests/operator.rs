//! The clearing adapter operator against testkit, with a scripted partner check: what a user
//! of a ClearingAdapter sees — its children, partner drain and restore, the scale subresource,
//! a refused downscale under load, missing and rotated Secrets, and the drain on deletion.

use crate::common::*;
use anyhow::Result;
use clearing_adapter::FINALIZER;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

fn child(h: &Harness, api_version: &str, plural: &str, name: &str) -> Value {
    h.get(api_version, plural, name).unwrap_or_default()
}

#[tokio::test]
async fn the_sample_gets_its_children_and_healthy_partners() -> Result<()> {
    let probe = ScriptedProbe::default();
    let h = start_with(probe.clone(), sample()?).await?;
    h.eventually("partners checked", |h| {
        h.status(SAMPLE)["partnersHealthy"] == "2/2"
    })
    .await?;
    let status = h.status(SAMPLE);
    assert_eq!(status["phase"], "Running");
    assert_eq!(condition(&status, "Available")["status"], "True");
    assert_eq!(
        condition(&status, "BankingPartnersHealthy")["status"],
        "True"
    );
    assert_eq!(
        status["selector"],
        "app.kubernetes.io/instance=card-clearing,app.kubernetes.io/name=clearing-adapter"
    );
    assert_eq!(status["bankingPartnerStatus"][1]["effectiveWeight"], 30);

    let adapter = child(&h, "payments.io/v1", "clearingadapters", SAMPLE);
    assert_eq!(adapter["metadata"]["finalizers"], json!([FINALIZER]));

    assert_eq!(
        h.weights(SAMPLE),
        json!({"acme-bank": 70, "globex-clearing": 30})
    );
    let config = child(&h, "v1", "configmaps", "card-clearing-config");
    let adapter_json: Value =
        serde_json::from_str(config["data"]["adapter.json"].as_str().unwrap_or_default())?;
    assert_eq!(
        adapter_json["partners"][0]["tls"]["caFile"],
        "/etc/clearing-adapter/secrets/acme-bank-ca/ca.crt"
    );
    assert_eq!(adapter_json["partners"][1]["auth"]["header"], "X-Api-Key");
    assert!(
        !config.to_string().contains("cGxhY2Vob2xkZXI="),
        "no Secret value in the ConfigMap"
    );

    let d = child(&h, "apps/v1", "deployments", SAMPLE);
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/component"],
        "card"
    );
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/name"],
        "clearing-adapter"
    );
    assert_eq!(
        d["spec"]["replicas"], 3,
        "the autoscaler keeps it at its floor"
    );
    let pod = &d["spec"]["template"]["spec"];
    let env: Vec<&str> = pod["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for name in [
        "PROCESSOR_TYPE",
        "TIMEOUT",
        "POD_NAME",
        "POD_NAMESPACE",
        "POD_IP",
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
        "RATE_LIMIT_RPS",
        "RATE_LIMIT_BURST",
    ] {
        assert!(env.contains(&name), "{name} in {env:?}");
    }
    assert_eq!(
        pod["containers"][0]["livenessProbe"]["httpGet"]["path"],
        "/health/live"
    );
    assert_eq!(
        pod["containers"][0]["readinessProbe"]["httpGet"]["path"],
        "/health/ready"
    );
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
            ["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(
        pod["topologySpreadConstraints"][0]["topologyKey"],
        "topology.kubernetes.io/zone"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["payments.io/config-hash"].is_string()
    );

    let hpa = child(&h, "autoscaling/v2", "horizontalpodautoscalers", SAMPLE);
    assert_eq!(hpa["spec"]["minReplicas"], 3);
    assert_eq!(
        hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        300
    );
    assert!(h.get("policy/v1", "poddisruptionbudgets", SAMPLE).is_some());
    assert!(h.get("v1", "services", SAMPLE).is_some());
    let policy = child(&h, "networking.k8s.io/v1", "networkpolicies", SAMPLE);
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        policy["spec"]["egress"][0]["ports"],
        json!([{"port": 443, "protocol": "TCP"}])
    );
    assert_eq!(policy["spec"]["egress"][1]["ports"][0]["port"], 53);

    let targets = probe.calls();
    assert_eq!(
        targets[0].url,
        "https://clearing.acme-bank.example/v2/health"
    );
    assert_eq!(
        targets[1].url,
        "https://api.globex-clearing.example/status/health"
    );
    assert!(targets[0].ca_pem.is_some() && targets[0].client_identity.is_some());
    Ok(())
}

#[tokio::test]
async fn a_failing_partner_is_drained_then_restored_without_rolling_the_pods() -> Result<()> {
    let probe = ScriptedProbe::default();
    let h = start_with(probe.clone(), sample()?).await?;
    h.eventually("checked", |h| h.status(SAMPLE)["partnersHealthy"] == "2/2")
        .await?;
    let hash = h.config_hash(SAMPLE);

    probe.set("globex-clearing", false);
    checks(&h, 4).await?;
    assert_eq!(
        h.weights(SAMPLE)["globex-clearing"],
        30,
        "four failures of five"
    );
    assert_eq!(
        condition(&h.status(SAMPLE), "BankingPartnersHealthy")["reason"],
        "PartnerFailing"
    );
    checks(&h, 1).await?;
    h.eventually("drained", |h| h.weights(SAMPLE)["globex-clearing"] == 0)
        .await?;
    assert_eq!(h.weights(SAMPLE)["acme-bank"], 70);
    let status = h.status(SAMPLE);
    assert_eq!(status["bankingPartnerStatus"][1]["drained"], true);
    assert_eq!(status["bankingPartnerStatus"][1]["consecutiveFailures"], 5);
    assert_eq!(status["partnersHealthy"], "1/2");
    let partners = condition(&status, "BankingPartnersHealthy");
    assert_eq!(
        (partners["status"].as_str(), partners["reason"].as_str()),
        (Some("False"), Some("PartnerDrained"))
    );
    assert_eq!(h.events("PartnerDrained").len(), 1);
    assert_eq!(
        h.config_hash(SAMPLE),
        hash,
        "a weight change does not roll the pods"
    );

    probe.set("globex-clearing", true);
    checks(&h, 3).await?;
    h.eventually("restored", |h| h.weights(SAMPLE)["globex-clearing"] == 30)
        .await?;
    assert_eq!(h.events("PartnerRestored").len(), 1);
    assert_eq!(
        condition(&h.status(SAMPLE), "BankingPartnersHealthy")["status"],
        "True"
    );
    assert_eq!(h.config_hash(SAMPLE), hash);
    let metrics = h.metrics().encode();
    assert!(
        metrics.contains(r#"clearing_adapter_partner_transitions_total{transition="drained"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"clearing_adapter_partner_effective_weight{namespace="payments",name="card-clearing",partner="globex-clearing"} 30"#));
    Ok(())
}

#[tokio::test]
async fn when_every_partner_is_down_the_weights_are_kept_and_status_says_so() -> Result<()> {
    let probe = ScriptedProbe::default();
    let h = start_with(probe.clone(), sample()?).await?;
    probe.set("acme-bank", false);
    probe.set("globex-clearing", false);
    checks(&h, 5).await?;
    h.until_reason(SAMPLE, "BankingPartnersHealthy", "AllPartnersDown")
        .await?;
    assert_eq!(
        h.weights(SAMPLE),
        json!({"acme-bank": 70, "globex-clearing": 30})
    );
    assert_eq!(h.events("AllPartnersDown").len(), 1);
    assert!(h.events("PartnerDrained").is_empty(), "nothing was drained");
    assert!(h.metrics().encode().contains(
        r#"clearing_adapter_partners_all_down{namespace="payments",name="card-clearing"} 1"#
    ));
    Ok(())
}

#[tokio::test]
async fn a_missing_secret_is_named_and_nothing_is_deployed_until_it_exists() -> Result<()> {
    let h = cluster().start().await?;
    h.create_as::<ClearingAdapter>(sample()?).await?;
    h.until_reason(SAMPLE, "Ready", "SecretMissing").await?;
    // Every missing Secret is named, so one fix covers them all.
    let ready = condition(&h.status(SAMPLE), "Ready");
    let message = ready["message"].as_str().unwrap_or_default();
    for (name, _) in SAMPLE_SECRETS {
        let named = format!("Secret {name} does not exist");
        assert_eq!(message.matches(&named).count(), 1, "{name} once: {ready}");
    }
    assert_eq!(h.status(SAMPLE)["phase"], "Pending");
    assert!(h.get("apps/v1", "deployments", SAMPLE).is_none());
    h.create_secrets().await?;
    h.eventually("Ready", |h| {
        condition(&h.status(SAMPLE), "Ready")["status"] == "True"
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_rotated_partner_certificate_rolls_the_pods() -> Result<()> {
    let h = start_with(ScriptedProbe::default(), sample()?).await?;
    let hash = h.config_hash(SAMPLE);
    let rotated = json!({"data": {"ca.crt": "cm90YXRlZA=="}});
    h.merge::<Secret>(NS, "globex-clearing-ca", rotated).await?;
    h.poke(SAMPLE, 1).await?;
    h.eventually("new config hash", |h| h.config_hash(SAMPLE) != hash)
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_invalid_spec_is_refused_with_the_field_named_and_nothing_applied() -> Result<()> {
    let h = cluster().start().await?;
    h.create_secrets().await?;
    let mut adapter = sample()?;
    adapter["spec"]["config"]["bankingPartners"][0]["headers"] =
        json!({"Authorization": "Bearer inline-token"});
    h.create_as::<ClearingAdapter>(adapter).await?;
    h.until_reason(SAMPLE, "Ready", "InvalidSpec").await?;
    let ready = condition(&h.status(SAMPLE), "Ready");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.config.bankingPartners[0].headers.Authorization"),
        "{message}"
    );
    assert!(
        !message.contains("inline-token"),
        "the value is never repeated"
    );
    assert_eq!(h.status(SAMPLE)["phase"], "Failed");
    assert!(h.get("apps/v1", "deployments", SAMPLE).is_none());
    Ok(())
}

#[tokio::test]
async fn kubectl_scale_sets_the_replicas_through_the_scale_subresource() -> Result<()> {
    let mut adapter = sample()?;
    adapter["spec"]
        .as_object_mut()
        .map(|s| s.remove("autoscaling"));
    let h = start_with(ScriptedProbe::default(), adapter).await?;
    let scale = h.adapters().get_scale(SAMPLE).await?;
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));
    assert_eq!(
        scale.status.map(|s| s.selector),
        Some(Some(
            "app.kubernetes.io/instance=card-clearing,app.kubernetes.io/name=clearing-adapter"
                .into()
        ))
    );
    // What `kubectl scale ca card-clearing --replicas=5` sends.
    let patch = json!({"spec": {"replicas": 5}});
    h.adapters()
        .patch_scale(SAMPLE, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    h.eventually("five pods", |h| {
        child(h, "apps/v1", "deployments", SAMPLE)["spec"]["replicas"] == 5
            && h.status(SAMPLE)["replicas"] == 5
    })
    .await?;
    let too_many = json!({"spec": {"replicas": 500}});
    let refused = h
        .adapters()
        .patch_scale(SAMPLE, &PatchParams::default(), &Patch::Merge(&too_many))
        .await;
    assert!(
        refused.is_err(),
        "the schema's maximum of 100 holds through scale"
    );
    Ok(())
}

#[tokio::test]
async fn a_scale_down_under_high_load_is_refused_until_the_load_drops() -> Result<()> {
    let h = start_with(ScriptedProbe::default(), sample()?).await?;
    // What the HPA controller reports from the metrics server.
    h.workloads.set_cpu_utilization(NS, SAMPLE, Some(95));
    let down = json!({"spec": {"replicas": 2}});
    h.adapters()
        .patch(SAMPLE, &PatchParams::default(), &Patch::Merge(&down))
        .await?;
    let message = h.until_reason(SAMPLE, "Ready", "InvalidSpec").await?;
    assert!(
        message.contains("spec.replicas: cannot scale down from 3 to 2"),
        "{message}"
    );
    assert!(message.contains("95%"), "{message}");
    assert_eq!(
        child(&h, "autoscaling/v2", "horizontalpodautoscalers", SAMPLE)["spec"]["minReplicas"],
        3
    );

    h.workloads.set_cpu_utilization(NS, SAMPLE, Some(40));
    h.poke(SAMPLE, 1).await?;
    h.eventually("applied once the load dropped", |h| {
        child(h, "autoscaling/v2", "horizontalpodautoscalers", SAMPLE)["spec"]["minReplicas"] == 2
    })
    .await?;
    Ok(())
}

/// Without an autoscaler nothing measures load: pods still stopping after the user's own
/// scale-down are not "high load", and the next scale-down goes through.
#[tokio::test]
async fn a_scale_down_right_after_another_is_not_refused_as_high_load() -> Result<()> {
    let mut adapter = sample()?;
    adapter["spec"]
        .as_object_mut()
        .map(|s| s.remove("autoscaling"));
    adapter["spec"]["replicas"] = json!(5);
    let h = start_with(ScriptedProbe::default(), adapter).await?;
    // The five pods take their time to stop.
    h.workloads.linger_pods(NS, SAMPLE, 5);
    for replicas in [3, 2] {
        let down = json!({"spec": {"replicas": replicas}});
        h.adapters()
            .patch(SAMPLE, &PatchParams::default(), &Patch::Merge(&down))
            .await?;
        h.eventually("applied", |h| {
            child(h, "apps/v1", "deployments", SAMPLE)["spec"]["replicas"] == replicas
        })
        .await?;
    }
    assert_ne!(
        condition(&h.status(SAMPLE), "Ready")["reason"],
        "InvalidSpec"
    );
    Ok(())
}

#[tokio::test]
async fn deletion_stops_new_payments_waits_for_the_pods_then_releases() -> Result<()> {
    let h = start_with(ScriptedProbe::default(), sample()?).await?;
    h.workloads.linger_pods(NS, SAMPLE, 2);
    h.adapters()
        .delete(SAMPLE, &DeleteParams::default())
        .await?;
    h.eventually("scaled to zero", |h| {
        child(h, "apps/v1", "deployments", SAMPLE)["spec"]["replicas"] == 0
    })
    .await?;
    assert!(
        h.get("autoscaling/v2", "horizontalpodautoscalers", SAMPLE)
            .is_none(),
        "no autoscaler to scale it back"
    );
    h.until_reason(SAMPLE, "Ready", "Draining").await?;
    assert!(
        h.get("payments.io/v1", "clearingadapters", SAMPLE)
            .is_some(),
        "held while pods finish"
    );
    h.workloads.linger_pods(NS, SAMPLE, 0);
    h.eventually("released", |h| {
        h.get("payments.io/v1", "clearingadapters", SAMPLE)
            .is_none()
    })
    .await?;
    assert_eq!(h.events("Drained").len(), 1);
    assert!(h.events("DrainTimedOut").is_empty());
    Ok(())
}

#[tokio::test]
async fn a_drain_past_its_timeout_is_reported_and_released() -> Result<()> {
    let h = start_with(ScriptedProbe::default(), sample()?).await?;
    h.workloads.linger_pods(NS, SAMPLE, 2);
    h.adapters()
        .delete(SAMPLE, &DeleteParams::default())
        .await?;
    h.until_reason(SAMPLE, "Ready", "Draining").await?;
    h.advance(31);
    h.eventually("released", |h| {
        h.get("payments.io/v1", "clearingadapters", SAMPLE)
            .is_none()
    })
    .await?;
    let timed_out = h.events("DrainTimedOut");
    assert_eq!(timed_out.len(), 1);
    assert!(
        timed_out[0]["note"]
            .as_str()
            .unwrap_or_default()
            .contains("2 adapter pod(s) still running")
    );
    Ok(())
}

/// The adapter's pods and load come from the operator's caches: a converged resync sends no
/// request for its Deployment or autoscaler.
#[tokio::test]
async fn a_converged_resync_reads_the_workload_without_a_request() -> Result<()> {
    let h = start_with(ScriptedProbe::default(), sample()?).await?;
    h.ready(SAMPLE).await?;
    assert!(
        h.get("autoscaling/v2", "horizontalpodautoscalers", SAMPLE)
            .is_some(),
        "the sample is autoscaled"
    );
    let stats = h.converged_resync_requests().await?;
    for plural in ["deployments", "horizontalpodautoscalers"] {
        assert_eq!(
            stats.count(testkit::Verb::Get, plural),
            0,
            "{plural} read from the cache: {stats:?}"
        );
    }
    Ok(())
}
