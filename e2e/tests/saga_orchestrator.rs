//! The SagaOrchestrator operator on a real API server, running as its own ServiceAccount under
//! the RBAC deploy/ grants: the sample's four-step saga rendered and versioned,
//! DependenciesReady following the PaymentServices (their status set as their operator would),
//! the orchestrator's own account allowed to report in-flight sagas and nothing else, and
//! deletion waiting for running sagas. Skipped without `E2E_CLUSTER=1`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use e2e::TestNamespace;
use e2e::dashboards::every_panel_shows;
use e2e::operator::{Operator, OperatorProcess};
use e2e::scenario::{PAYMENT_SERVICE, SAGA_ORCHESTRATOR, condition, is_true, writes_over};
use e2e::until;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const OPERATOR: Operator = Operator::of(&saga_orchestrator::OPERATOR);

const SAMPLE: &str = "payment-saga";
const SERVICES: [&str; 3] = [
    "fraud-screening",
    "ledger-service",
    "payment-initiation-service",
];

const OPERATOR_WRITES: [(&str, &str, &str); 6] = [
    ("payments.io", "sagaorchestrators", ""),
    ("payments.io", "sagaorchestrators", "status"),
    ("", "configmaps", ""),
    ("apps", "deployments", ""),
    ("rbac.authorization.k8s.io", "roles", ""),
    ("events.k8s.io", "events", ""),
];

async fn set_ready(ns: &TestNamespace, service: &str, ready: bool) -> Result<()> {
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": status, "reason": "E2E",
        "message": "set by the e2e test", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    ns.api(PAYMENT_SERVICE)
        .patch_status(service, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The persistence Secret and the three PaymentServices (not Ready: no payment-service
/// operator runs here) the sample needs.
async fn dependencies_in(ns: &TestNamespace) -> Result<()> {
    let secret = json!({"metadata": {"name": "saga-db-app"}, "stringData": {"username": "app", "password": "e2e"}});
    Api::<Secret>::namespaced(ns.client.clone(), &ns.name)
        .create(&PostParams::default(), &serde_json::from_value(secret)?)
        .await?;
    for service in SERVICES {
        let ps = json!({"apiVersion": "payments.io/v2", "kind": "PaymentService",
            "metadata": {"name": service, "namespace": ns.name},
            "spec": {"version": "1.0.0", "image": format!("registry.example/{service}:1.0.0")}});
        ns.api(PAYMENT_SERVICE)
            .create(&PostParams::default(), &serde_json::from_value(ps)?)
            .await?;
    }
    Ok(())
}

/// The sample with one pod and no autoscaler.
fn small(so: &mut Value) {
    so["spec"].as_object_mut().map(|s| s.remove("autoscaling"));
    so["spec"]["replicas"] = json!(1);
    so["spec"]["drainTimeout"] = json!("2m");
}

/// The operator running in a new namespace with the sample's dependencies and the sample.
async fn saga_sample(test: &str) -> Result<Option<(TestNamespace, OperatorProcess)>> {
    let Some(ns) = e2e::cluster(test).await? else {
        return Ok(None);
    };
    ns.grant(&OPERATOR).await?;
    dependencies_in(&ns).await?;
    let operator = ns.start_operator(&OPERATOR, "a", true).await?;
    ns.create_sample(SAGA_ORCHESTRATOR, SAMPLE, small).await?;
    ns.status_until(
        SAGA_ORCHESTRATOR,
        SAMPLE,
        "Ready",
        Duration::from_secs(90),
        |s| is_true(s, "Ready"),
    )
    .await?;
    Ok(Some((ns, operator)))
}

fn current(status: &Value) -> String {
    status["activeDefinitions"]["card-payment"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn definitions_version_dependencies_follow_and_deletion_waits_for_running_sagas() -> Result<()>
{
    let Some((ns, mut operator)) = saga_sample("so-drain").await? else {
        return Ok(());
    };
    let deps = |s: &Value| condition(s, "DependenciesReady")["status"].clone();
    let status = ns
        .status_until(
            SAGA_ORCHESTRATOR,
            SAMPLE,
            "dependencies not ready",
            Duration::from_secs(30),
            |s| deps(s) == "False",
        )
        .await?;
    assert!(
        condition(&status, "DependenciesReady")["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not Ready")
    );
    for service in SERVICES {
        set_ready(&ns, service, true).await?;
    }
    ns.status_until(
        SAGA_ORCHESTRATOR,
        SAMPLE,
        "dependencies ready",
        Duration::from_secs(30),
        |s| deps(s) == "True",
    )
    .await?;
    set_ready(&ns, "ledger-service", false).await?;
    ns.status_until(
        SAGA_ORCHESTRATOR,
        SAMPLE,
        "ledger un-ready",
        Duration::from_secs(30),
        |s| deps(s) == "False",
    )
    .await?;
    set_ready(&ns, "ledger-service", true).await?;

    // A definition change: a new version beside the first.
    let first = current(
        &ns.get_json(SAGA_ORCHESTRATOR, SAMPLE)
            .await?
            .context("the orchestrator")?["status"],
    );
    let mut sagas = ns
        .get_json(SAGA_ORCHESTRATOR, SAMPLE)
        .await?
        .context("the orchestrator")?["spec"]["sagas"]
        .clone();
    sagas[0]["steps"][0]["timeout"] = json!("9s");
    ns.api(SAGA_ORCHESTRATOR)
        .patch(
            SAMPLE,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"sagas": sagas}})),
        )
        .await?;
    let status = ns
        .status_until(
            SAGA_ORCHESTRATOR,
            SAMPLE,
            "a second version",
            Duration::from_secs(30),
            |s| {
                s["definitionVersions"]
                    .as_array()
                    .is_some_and(|v| v.len() == 2)
            },
        )
        .await?;
    let second = current(&status);
    assert_ne!(first, second);

    // The orchestrator's own account reports in-flight sagas, and may write nothing else.
    let orchestrator = ns.client_as(&ns.name, SAMPLE).await?;
    let own: Api<ConfigMap> = Api::namespaced(orchestrator, &ns.name);
    let report = json!({"data": {format!("card-payment.{first}"): "2"}});
    own.patch(
        &format!("{SAMPLE}-inflight"),
        &PatchParams::default(),
        &Patch::Merge(&report),
    )
    .await
    .context("the orchestrator reporting in-flight sagas")?;
    let denied = own
        .patch(
            &format!("{SAMPLE}-sagas"),
            &PatchParams::default(),
            &Patch::Merge(&json!({"data": {"x": "y"}})),
        )
        .await;
    assert!(
        matches!(denied, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{denied:?}"
    );
    ns.status_until(
        SAGA_ORCHESTRATOR,
        SAMPLE,
        "the first version draining",
        Duration::from_secs(30),
        |s| s["drainingVersions"] == json!([format!("card-payment/{first}")]),
    )
    .await?;

    let quiet = writes_over(
        &ns.client,
        &OPERATOR_WRITES,
        Duration::from_secs(8),
        Duration::from_secs(11),
    )
    .await?;
    println!("saga-orchestrator: writes over two converged resyncs: {quiet:?}");
    assert!(quiet.is_empty(), "a converged operator wrote: {quiet:?}");
    // The dashboard shows the definitions, the dependencies and the sagas in flight.
    every_panel_shows(&saga_orchestrator::OPERATOR, &operator, &ns.name, &[]).await?;

    // Deletion waits for the two running sagas, with no new one started.
    ns.api(SAGA_ORCHESTRATOR)
        .delete(SAMPLE, &DeleteParams::default())
        .await?;
    ns.status_until(
        SAGA_ORCHESTRATOR,
        SAMPLE,
        "draining",
        Duration::from_secs(30),
        |s| s["phase"] == "Draining",
    )
    .await?;
    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let index: Value = serde_json::from_str(
        cms.get(&format!("{SAMPLE}-sagas"))
            .await?
            .data
            .unwrap_or_default()
            .get("index.json")
            .map_or("", String::as_str),
    )?;
    assert_eq!(index["draining"], true);
    let done = json!({"data": {format!("card-payment.{first}"): "0"}});
    own.patch(
        &format!("{SAMPLE}-inflight"),
        &PatchParams::default(),
        &Patch::Merge(&done),
    )
    .await?;
    until("released", Duration::from_secs(60), || async {
        Ok(ns
            .get_json(SAGA_ORCHESTRATOR, SAMPLE)
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    ns.until_none_left(
        &[
            ("apps", "v1", "Deployment", "deployments"),
            (
                "networking.k8s.io",
                "v1",
                "NetworkPolicy",
                "networkpolicies",
            ),
            ("", "v1", "Service", "services"),
        ],
        Duration::from_secs(60),
    )
    .await?;
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(ns.client.clone(), &ns.name);
    until(
        "the orchestrator's Role collected",
        Duration::from_secs(30),
        || async {
            Ok(roles
                .get_opt(&format!("{SAMPLE}-inflight"))
                .await?
                .is_none()
                .then_some(()))
        },
    )
    .await?;
    operator.assert_no_rbac_denials()?;
    operator.kill()?;
    ns.cleanup().await
}

/// The drain finalizer never holds a namespace deletion.
#[tokio::test]
async fn deleting_the_namespace_completes() -> Result<()> {
    let Some((ns, operator)) = saga_sample("so-nsdelete").await? else {
        return Ok(());
    };
    let started = Instant::now();
    ns.cleanup().await?;
    println!(
        "saga-orchestrator: namespace deleted in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    drop(operator);
    Ok(())
}

/// Another team's object with any of the sample's child names is never changed, adopted,
/// scaled, mounted, selected or deleted, on create, update and delete of an orchestrator, and
/// its status names it (operator-harness's foreign-object check, on a real server).
#[tokio::test]
async fn another_teams_objects_are_never_touched() -> Result<()> {
    let Some(ns) = e2e::cluster("so-foreign").await? else {
        return Ok(());
    };
    ns.grant(&OPERATOR).await?;
    dependencies_in(&ns).await?;
    let operator = ns.start_operator(&OPERATOR, "a", true).await?;
    let probe = ns.sample_json(SAGA_ORCHESTRATOR, SAMPLE, small)?;
    crate::foreign::never_touched(ns, operator, &saga_orchestrator::OPERATOR, probe, &[]).await
}
