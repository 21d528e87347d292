//! The ClearingAdapter operator on a real API server, running as its own ServiceAccount under
//! the RBAC deploy/ grants: the sample with its partners pointed at local https stand-ins
//! (each with a CA of its own; nothing leaves loopback), a partner drained and restored,
//! `kubectl scale` through the scale subresource, a quiet converged operator, and deletion
//! drained by the finalizer. Skipped without `E2E_CLUSTER=1`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use e2e::TestNamespace;
use e2e::dashboards::every_panel_shows;
use e2e::operator::{Operator, OperatorProcess, Webhooks};
use e2e::prometheus::{RealPrometheus, Target, WorkloadStandIn};
use e2e::scenario::{CLEARING_ADAPTER, condition, is_true, writes_over};
use e2e::until;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testkit::partner::PartnerStandIn;

const OPERATOR: Operator = Operator::of(&clearing_adapter::OPERATOR);

const SAMPLE: &str = "card-clearing";

const OPERATOR_WRITES: [(&str, &str, &str); 7] = [
    ("payments.io", "clearingadapters", ""),
    ("payments.io", "clearingadapters", "status"),
    ("", "configmaps", ""),
    ("apps", "deployments", ""),
    ("", "services", ""),
    ("networking.k8s.io", "networkpolicies", ""),
    ("events.k8s.io", "events", ""),
];

async fn weights(cms: &Api<ConfigMap>) -> Result<Value> {
    let cm = cms.get(&format!("{SAMPLE}-config")).await?;
    let text = cm
        .data
        .and_then(|d| d.get("weights.json").cloned())
        .context("weights.json")?;
    Ok(serde_json::from_str(&text)?)
}

/// How many events of `reason` the namespace holds.
async fn events_of(ns: &TestNamespace, reason: &str) -> Result<usize> {
    let events: Api<Event> = Api::namespaced(ns.client.clone(), &ns.name);
    let listed = events.list(&Default::default()).await?.items;
    Ok(listed
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .count())
}

/// The two partners' local stand-ins.
struct Partners {
    acme: PartnerStandIn,
    globex: PartnerStandIn,
}

/// The sample's partners as local stand-ins (globex answering 503), and its Secrets in place.
async fn partners_in(ns: &TestNamespace) -> Result<Partners> {
    let acme = PartnerStandIn::start().await?;
    let globex = PartnerStandIn::start().await?;
    globex.set_healthy(false);

    let secrets: Api<Secret> = Api::namespaced(ns.client.clone(), &ns.name);
    let placeholders: [(&str, BTreeMap<&str, &str>); 5] = [
        ("acme-bank-ca", BTreeMap::from([("ca.crt", acme.ca_pem())])),
        (
            "globex-clearing-ca",
            BTreeMap::from([("ca.crt", globex.ca_pem())]),
        ),
        (
            "acme-bank-credentials",
            BTreeMap::from([("token", "placeholder")]),
        ),
        (
            "globex-clearing-credentials",
            BTreeMap::from([("api-key", "placeholder")]),
        ),
        (
            "card-clearing-encryption",
            BTreeMap::from([("key", "placeholder")]),
        ),
    ];
    for (name, data) in placeholders {
        let secret = json!({"metadata": {"name": name}, "stringData": data});
        secrets
            .create(&PostParams::default(), &serde_json::from_value(secret)?)
            .await?;
    }
    Ok(Partners { acme, globex })
}

/// The sample pointed at the stand-ins: two pods, no autoscaler, quick checks.
fn at_stand_ins(partners: &Partners) -> impl FnOnce(&mut Value) {
    let (acme, globex) = (partners.acme.url(), partners.globex.url());
    move |ca| {
        let spec = &mut ca["spec"];
        spec["replicas"] = json!(2);
        spec.as_object_mut().map(|s| s.remove("autoscaling"));
        let partners = &mut spec["config"]["bankingPartners"];
        partners[0]["endpoint"] = json!(acme);
        partners[0]["tls"] = json!({"caSecretRef": {"name": "acme-bank-ca", "key": "ca.crt"}});
        partners[1]["endpoint"] = json!(globex);
        spec["config"]["healthCheckInterval"] = json!("5s");
        spec["circuitBreaker"] = json!({"failureThreshold": 2, "successThreshold": 1});
        spec["drainTimeout"] = json!("60s");
    }
}

/// The operator running in a new namespace with the sample created at the stand-ins.
async fn adapter_with_partners(
    test: &str,
) -> Result<Option<(TestNamespace, OperatorProcess, Partners)>> {
    let Some(ns) = e2e::cluster(test).await? else {
        return Ok(None);
    };
    ns.grant(&OPERATOR).await?;
    let partners = partners_in(&ns).await?;
    let operator = ns.start_operator(&OPERATOR, "a", false).await?;
    ns.create_sample(CLEARING_ADAPTER, SAMPLE, at_stand_ins(&partners))
        .await?;
    Ok(Some((ns, operator, partners)))
}

#[tokio::test]
async fn partners_drain_and_recover_kubectl_scales_and_deletion_drains() -> Result<()> {
    let Some((ns, mut operator, Partners { acme, globex })) =
        adapter_with_partners("ca-drain").await?
    else {
        return Ok(());
    };
    // Seed 001's adapter pods pass the restricted Pod Security admission of the namespace.
    let status = ns
        .status_until(
            CLEARING_ADAPTER,
            SAMPLE,
            "Ready",
            Duration::from_secs(90),
            |s| is_true(s, "Ready"),
        )
        .await?;
    assert_eq!(status["phase"], "Running", "{status}");

    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let status = ns
        .status_until(
            CLEARING_ADAPTER,
            SAMPLE,
            "globex drained",
            Duration::from_secs(60),
            |s| s["bankingPartnerStatus"][1]["drained"] == true,
        )
        .await?;
    assert_eq!(
        weights(&cms).await?,
        json!({"acme-bank": 70, "globex-clearing": 0})
    );
    assert_eq!(
        status["bankingPartnerStatus"][0]["healthy"], true,
        "{status}"
    );
    assert_eq!(status["bankingPartnerStatus"][1]["message"], "HTTP 503");
    assert_eq!(
        condition(&status, "BankingPartnersHealthy")["reason"],
        "PartnerDrained"
    );
    ensure!(
        acme.requests() > 0 && globex.requests() > 0,
        "both partners were checked"
    );

    globex.set_healthy(true);
    ns.status_until(
        CLEARING_ADAPTER,
        SAMPLE,
        "globex restored",
        Duration::from_secs(60),
        |s| {
            s["bankingPartnerStatus"][1]["drained"] == false
                && condition(s, "BankingPartnersHealthy")["status"] == "True"
        },
    )
    .await?;
    assert_eq!(
        weights(&cms).await?,
        json!({"acme-bank": 70, "globex-clearing": 30})
    );

    // A person drains a healthy partner, then gives it back (`kubectl payments drain`).
    let adapters = ns.api(CLEARING_ADAPTER);
    let drain = |partners: Value| {
        let patch =
            json!({"metadata": {"annotations": {clearing_adapter::DRAIN_ANNOTATION: partners}}});
        let adapters = adapters.clone();
        async move {
            adapters
                .patch(SAMPLE, &PatchParams::default(), &Patch::Merge(patch))
                .await
        }
    };
    drain(json!("acme-bank")).await?;
    ns.status_until(
        CLEARING_ADAPTER,
        SAMPLE,
        "acme-bank drained by hand",
        Duration::from_secs(30),
        |s| s["bankingPartnerStatus"][0]["drainedByHand"] == true,
    )
    .await?;
    assert_eq!(
        weights(&cms).await?,
        json!({"acme-bank": 0, "globex-clearing": 30})
    );
    drain(Value::Null).await?;
    ns.status_until(
        CLEARING_ADAPTER,
        SAMPLE,
        "acme-bank back",
        Duration::from_secs(30),
        |s| s["bankingPartnerStatus"][0]["effectiveWeight"] == 70,
    )
    .await?;

    // `kubectl scale` through the CRD's scale subresource.
    let out = Command::new("kubectl")
        .args([
            "scale",
            "clearingadapter",
            SAMPLE,
            "--replicas=3",
            "-n",
            &ns.name,
        ])
        .output()
        .context("running kubectl scale")?;
    ensure!(
        out.status.success(),
        "kubectl scale: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    until("three replicas", Duration::from_secs(30), || async {
        Ok(deployments
            .get(SAMPLE)
            .await?
            .spec
            .and_then(|s| s.replicas)
            .filter(|r| *r == 3))
    })
    .await?;
    ns.status_until(
        CLEARING_ADAPTER,
        SAMPLE,
        "three ready",
        Duration::from_secs(60),
        |s| s["readyReplicas"] == 3 && s["replicas"] == 3,
    )
    .await?;

    // Checks at their production pace: a converged adapter costs no write.
    ns.api(CLEARING_ADAPTER)
        .patch(
            SAMPLE,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"config": {"healthCheckInterval": "10m"}}})),
        )
        .await?;
    let quiet = writes_over(
        &ns.client,
        &OPERATOR_WRITES,
        Duration::from_secs(8),
        Duration::from_secs(11),
    )
    .await?;
    println!("clearing-adapter: writes over two converged resyncs: {quiet:?}");
    assert!(quiet.is_empty(), "a converged operator wrote: {quiet:?}");

    // Deletion: scaled to zero, the pods drained, then the finalizer released. The stand-in
    // kubelet stops pods at once, so the drain is short: the Drained event (recorded only once
    // the Deployment, still there, has no pod left) is the proof it ran before the release.
    ns.api(CLEARING_ADAPTER)
        .delete(SAMPLE, &DeleteParams::default())
        .await?;
    until("released", Duration::from_secs(90), || async {
        Ok(ns
            .get_json(CLEARING_ADAPTER, SAMPLE)
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    ns.until_none_left(
        &[
            ("apps", "v1", "Deployment", "deployments"),
            ("", "v1", "Service", "services"),
        ],
        Duration::from_secs(60),
    )
    .await?;
    let drained = events_of(&ns, "Drained").await?;
    assert!(drained >= 1, "no Drained event before the release");
    operator.assert_no_rbac_denials()?;
    operator.kill()?;
    ns.cleanup().await
}

/// Seed 001's judgement with a real Prometheus on loopback scraping the adapter's stand-in
/// workload every second: at 99% success the figures fill `status.metrics`; at 90% the
/// adapter goes `Failed`/`LowSuccessRate` with a Warning event; back at 99.5% it recovers.
#[tokio::test]
async fn a_success_rate_read_from_prometheus_fails_the_adapter_until_it_recovers() -> Result<()> {
    let Some(ns) = e2e::cluster("ca-payments").await? else {
        return Ok(());
    };
    ns.grant(&OPERATOR).await?;
    let partners = partners_in(&ns).await?;
    let workload = WorkloadStandIn::start(100.0, 0.99).await?;
    let labels = vec![
        ("namespace".to_string(), ns.name.clone()),
        ("service".to_string(), SAMPLE.to_string()),
    ];
    let target = Target {
        address: workload.address,
        labels,
    };
    let prometheus = RealPrometheus::start(&ns.name, std::slice::from_ref(&target)).await?;
    let reading = format!("  prometheus:\n    url: \"{}\"\n", prometheus.url);
    let operator = ns
        .start_operator_configured(&OPERATOR, "a", true, Webhooks::Off, &reading, &[])
        .await?;
    let at_partners = at_stand_ins(&partners);
    ns.create_sample(CLEARING_ADAPTER, SAMPLE, |ca| {
        at_partners(ca);
        ca["spec"]["monitoring"]["metricsWindow"] = json!("10s");
    })
    .await?;
    let started = Instant::now();
    let judged = |reason: &'static str, phase: &'static str| {
        ns.status_until(
            CLEARING_ADAPTER,
            SAMPLE,
            reason,
            Duration::from_secs(90),
            move |s| condition(s, "PaymentsSucceeding")["reason"] == reason && s["phase"] == phase,
        )
    };
    let status = judged("SuccessRateMet", "Running").await?;
    let metrics = &status["metrics"];
    let rate = metrics["successRate"].as_f64().unwrap_or_default();
    assert!((0.98..=1.0).contains(&rate), "{metrics}");
    assert!(
        metrics["totalTransactions"].as_i64().unwrap_or_default() > 0,
        "{metrics}"
    );
    assert_eq!(metrics["averageResponseTime"], "85ms");

    workload.set_success_ratio(0.9);
    let status = judged("LowSuccessRate", "Failed").await?;
    println!(
        "clearing-adapter: judged from a real Prometheus, Failed {:.1}s after the start",
        started.elapsed().as_secs_f64()
    );
    let rate = status["metrics"]["successRate"]
        .as_f64()
        .unwrap_or_default();
    assert!(rate < 0.95, "{status}");
    let low = events_of(&ns, "LowSuccessRate").await?;
    ensure!(low == 1, "{low} LowSuccessRate events");

    workload.set_success_ratio(0.995);
    judged("SuccessRateMet", "Running").await?;
    // Seed 001's dashboard panels (its recording rules over the workload) and the partners'.
    every_panel_shows(&clearing_adapter::OPERATOR, &operator, &ns.name, &[target]).await?;
    operator.assert_no_rbac_denials()?;
    ns.cleanup().await
}

/// The drain finalizer never holds a namespace deletion: the operator sees the namespace
/// going and releases at once.
#[tokio::test]
async fn deleting_the_namespace_completes() -> Result<()> {
    let Some((ns, operator, _partners)) = adapter_with_partners("ca-nsdelete").await? else {
        return Ok(());
    };
    ns.status_until(
        CLEARING_ADAPTER,
        SAMPLE,
        "Ready",
        Duration::from_secs(90),
        |s| is_true(s, "Ready"),
    )
    .await?;
    let started = Instant::now();
    ns.cleanup().await?;
    println!(
        "clearing-adapter: namespace deleted in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    drop(operator);
    Ok(())
}

/// Another team's object with any of the sample's child names is never changed, adopted,
/// scaled, mounted, selected or deleted, on create, update and delete of an adapter, and the
/// adapter's status names it (operator-harness's foreign-object check, on a real server).
#[tokio::test]
async fn another_teams_objects_are_never_touched() -> Result<()> {
    let Some(ns) = e2e::cluster("ca-foreign").await? else {
        return Ok(());
    };
    ns.grant(&OPERATOR).await?;
    let partners = partners_in(&ns).await?;
    let operator = ns.start_operator(&OPERATOR, "a", false).await?;
    let probe = ns.sample_json(CLEARING_ADAPTER, SAMPLE, at_stand_ins(&partners))?;
    crate::foreign::never_touched(ns, operator, &clearing_adapter::OPERATOR, probe, &[]).await
}
