//! A canary judged by its analysis metrics, against testkit and a scripted Prometheus: it is
//! promoted when every metric passes, rolled back when one fails, and held — never promoted —
//! while Prometheus cannot answer.

use anyhow::{Context as _, Result};
use operator_harness::prometheus::ScriptedPrometheus;
use payment_service::crd::PaymentService;
use serde_json::json;

use crate::common::{
    Harness, NS, Payments, SEED, cluster_reading, create_tls_secret, sample_with, upgrade,
};

/// The seed's service as a canary of two steps without pauses, judged by one success-rate
/// metric (v2 only: set after the conversion from the seed's v1).
fn analysed() -> Result<PaymentService> {
    let mut ps = sample_with(|spec| {
        spec["deploymentStrategy"] = json!({
            "type": "Canary",
            "progressDeadlineSeconds": 120,
            "canarySteps": [{"setWeight": 25}, {"setWeight": 50}],
        });
        spec["autoscaling"]["enabled"] = json!(false);
        spec["replicas"] = json!(4);
    })?;
    let canary = ps
        .spec
        .deployment_strategy
        .as_mut()
        .and_then(|s| s.canary.as_mut())
        .context("a canary")?;
    canary.analysis = Some(serde_json::from_value(json!({"metrics": [{
        "name": "success-rate",
        "query": "payment:success_rate{namespace=\"{{namespace}}\",service=\"{{service}}\",version=\"{{version}}\"}",
        "successCondition": "result >= 0.95",
        "interval": "10s",
    }]}))?);
    Ok(ps)
}

async fn serving_1_5(prometheus: &ScriptedPrometheus) -> Result<Harness> {
    let mut h = cluster_reading(Some(prometheus.shared())).prepare().await?;
    create_tls_secret(&h.client()).await?;
    h.start_operator();
    h.create_running(&analysed()?).await?;
    Ok(h)
}

#[tokio::test]
async fn a_canary_whose_metrics_pass_is_promoted_and_one_whose_metric_fails_is_rolled_back()
-> Result<()> {
    let prometheus = ScriptedPrometheus::default();
    prometheus.answer(0.99);
    let h = serving_1_5(&prometheus).await?;
    assert!(prometheus.asked().is_empty(), "no query without a canary");

    h.patch_spec(upgrade("1.6.0")).await?;
    h.eventually("1.6.0 promoted", |h| {
        h.status()["currentVersion"] == "1.6.0"
    })
    .await?;
    let asked = prometheus.asked();
    assert!(
        asked.contains(&format!(
            "payment:success_rate{{namespace=\"{NS}\",service=\"{SEED}\",version=\"1.6.0\"}}"
        )),
        "the query templated with the service and the version under test: {asked:?}"
    );
    assert_eq!(asked.len(), 2, "one measurement per step: {asked:?}");

    prometheus.answer(0.62);
    h.patch_spec(upgrade("1.7.0")).await?;
    h.eventually("1.7.0 rolled back", |h| {
        h.status()["failedRollout"]["target"]["version"] == "1.7.0"
    })
    .await?;
    let status = h.status();
    assert_eq!(status["currentVersion"], "1.6.0");
    assert_eq!(
        status["failedRollout"]["message"],
        "canary step 1 of 2 (25%): analysis metric success-rate failed 1 time(s), more than its failureLimit 0: 0.62 does not meet `result >= 0.95`"
    );
    let rolled_back = h.events("RolledBack");
    assert_eq!(rolled_back.len(), 1, "{rolled_back:?}");
    assert!(h.metrics().encode().contains(
        r#"payment_service_rollouts_total{namespace="payments",strategy="Canary",result="rolled_back",cause="analysis"} 1"#
    ));
    Ok(())
}

#[tokio::test]
async fn a_canary_held_while_prometheus_cannot_answer_moves_on_once_it_can() -> Result<()> {
    let prometheus = ScriptedPrometheus::default();
    prometheus.go_down();
    let h = serving_1_5(&prometheus).await?;
    h.patch_spec(upgrade("1.6.0")).await?;
    h.eventually("the step held, inconclusive", |h| {
        h.status()["rollout"]["analysis"][0]["phase"] == "Inconclusive"
    })
    .await?;
    let inconclusive = h.events("AnalysisInconclusive");
    assert_eq!(inconclusive.len(), 1, "{inconclusive:?}");
    assert_eq!(inconclusive[0]["type"], "Warning");
    assert!(
        inconclusive[0]["note"]
            .as_str()
            .is_some_and(|n| n.contains("connection refused") && n.contains("never promoted")),
        "{inconclusive:?}"
    );
    // Many intervals later, still held on the first step.
    for _ in 0..3 {
        h.advance(11);
        let asked = prometheus.asked().len();
        h.eventually("measured again", |_| prometheus.asked().len() > asked)
            .await?;
    }
    let status = h.status();
    assert_eq!(status["currentVersion"], "1.5.0");
    assert_eq!(status["rollout"]["step"], 0, "{status}");
    assert!(status["rollout"]["analysis"][0]["inconclusive"].as_i64() >= Some(4));

    prometheus.answer(0.99);
    h.advance(11);
    h.eventually("promoted once it reads", |h| {
        h.status()["currentVersion"] == "1.6.0"
    })
    .await?;
    Ok(())
}
