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
use e2e::operator::{Operator, OperatorProcess};
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
    let events: Api<Event> = Api::namespaced(ns.client.clone(), &ns.name);
    let drained = events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Drained"))
        .count();
    assert!(drained >= 1, "no Drained event before the release");
    operator.assert_no_rbac_denials()?;
    operator.kill()?;
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
