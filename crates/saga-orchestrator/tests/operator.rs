//! The saga orchestrator operator against testkit: what a user of a SagaOrchestrator sees —
//! its definitions rendered and versioned, invalid ones held back, DependenciesReady following
//! the PaymentServices (and a CloudNativePG cluster), and the drain on deletion.

use crate::common::*;
use anyhow::Result;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use saga_orchestrator::FINALIZER;
use serde_json::{Value, json};

fn index(h: &Harness) -> Value {
    serde_json::from_str(h.sagas_data()["index.json"].as_str().unwrap_or_default())
        .unwrap_or_default()
}

fn current(h: &Harness) -> String {
    index(h)["sagas"]["card-payment"]["current"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn versions(h: &Harness) -> Vec<String> {
    index(h)["sagas"]["card-payment"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

/// Changes the first step's timeout: a new version of the saga.
async fn new_version(h: &Harness, timeout: &str) -> Result<String> {
    let before = current(h);
    let mut sagas = sample()?["spec"]["sagas"].clone();
    sagas[0]["steps"][0]["timeout"] = json!(timeout);
    h.edit(json!({"spec": {"sagas": sagas}})).await?;
    h.eventually("a new version", |h| current(h) != before)
        .await?;
    Ok(current(h))
}

#[tokio::test]
async fn the_sample_renders_its_definitions_and_runs_with_its_own_identity() -> Result<()> {
    let h = start_sample(true).await?;
    let status = h.status(SAMPLE);
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["sagas"], 1);
    let version = current(&h);
    assert_eq!(
        status["activeDefinitions"]["card-payment"],
        version.as_str()
    );
    assert_eq!(condition(&status, "DefinitionsValid")["status"], "True");
    assert_eq!(condition(&status, "DependenciesReady")["status"], "True");
    let doc: Value = serde_json::from_str(
        h.sagas_data()[format!("card-payment.{version}.json")]
            .as_str()
            .unwrap_or_default(),
    )?;
    assert_eq!(
        doc["steps"][2]["url"],
        "http://ledger-service.payments.svc:8080"
    );
    assert_eq!(doc["pivot"], "submit-to-clearing");
    assert_eq!(
        h.get("payments.io/v1", "sagaorchestrators", SAMPLE)
            .unwrap_or_default()["metadata"]["finalizers"],
        json!([FINALIZER])
    );
    for (api_version, plural, name) in [
        ("v1", "serviceaccounts", SAMPLE),
        (
            "rbac.authorization.k8s.io/v1",
            "roles",
            "payment-saga-inflight",
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "rolebindings",
            "payment-saga-inflight",
        ),
        ("v1", "configmaps", "payment-saga-inflight"),
        ("v1", "services", SAMPLE),
        ("networking.k8s.io/v1", "networkpolicies", SAMPLE),
        ("policy/v1", "poddisruptionbudgets", SAMPLE),
        ("autoscaling/v2", "horizontalpodautoscalers", SAMPLE),
    ] {
        assert!(
            h.get(api_version, plural, name).is_some(),
            "{plural}/{name}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_definition_change_adds_a_version_rolls_the_pods_and_keeps_the_old_one() -> Result<()> {
    let h = start_sample(true).await?;
    let (first, hash) = (current(&h), h.config_hash());
    let second = new_version(&h, "9s").await?;
    assert_eq!(versions(&h), [second.clone(), first.clone()]);
    h.eventually("rolled", |h| h.config_hash() != hash).await?;
    assert!(
        h.sagas_data()[format!("card-payment.{first}.json")].is_string(),
        "the old document stays"
    );
    let updates = h.events("DefinitionsUpdated");
    assert!(
        updates.iter().any(|e| e["note"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("card-payment/{second}"))),
        "{updates:?}"
    );
    Ok(())
}

#[tokio::test]
async fn versions_beyond_the_limit_go_but_never_one_with_instances_in_flight() -> Result<()> {
    let h = start_sample(true).await?;
    h.edit(json!({"spec": {"definitionHistoryLimit": 1}}))
        .await?;
    let first = current(&h);
    h.report_in_flight(json!({format!("card-payment.{first}"): "2"}))
        .await?;
    let second = new_version(&h, "8s").await?;
    let third = new_version(&h, "7s").await?;
    h.eventually("three held", |h| versions(h).len() == 3)
        .await?;
    assert_eq!(versions(&h), [third.clone(), second.clone(), first.clone()]);
    let status = h.status(SAMPLE);
    assert_eq!(
        status["drainingVersions"],
        json!([format!("card-payment/{first}")])
    );
    assert!(
        condition(&status, "DefinitionsValid")["message"]
            .as_str()
            .unwrap_or_default()
            .contains("older versions with instances still running")
    );
    let metrics = h.metrics().encode();
    for line in [
        r#"saga_orchestrator_instances_in_flight{namespace="payments",name="payment-saga"} 2"#,
        r#"saga_orchestrator_definition_versions{namespace="payments",name="payment-saga",state="draining"} 1"#,
        r#"saga_orchestrator_definitions_valid{namespace="payments",name="payment-saga"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line}");
    }

    // The instances finish: the first version goes, the limit keeps one older.
    h.report_in_flight(json!({format!("card-payment.{first}"): "0"}))
        .await?;
    h.eventually("dropped", |h| {
        versions(h) == [third.clone(), second.clone()]
    })
    .await?;
    assert!(h.sagas_data()[format!("card-payment.{first}.json")].is_null());
    assert_eq!(h.events("DefinitionsDropped").len(), 1);
    Ok(())
}

#[tokio::test]
async fn an_invalid_definition_never_reaches_the_orchestrator() -> Result<()> {
    let h = start_sample(true).await?;
    let (before, hash) = (h.sagas_data(), h.config_hash());
    let mut sagas = sample()?["spec"]["sagas"].clone();
    sagas[0]["steps"][1]
        .as_object_mut()
        .map(|s| s.remove("compensation"));
    h.edit(json!({"spec": {"sagas": sagas}})).await?;
    h.eventually("refused", |h| {
        condition(&h.status(SAMPLE), "DefinitionsValid")["status"] == "False"
    })
    .await?;
    let status = h.status(SAMPLE);
    let message = condition(&status, "DefinitionsValid")["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("spec.sagas[0].steps[1].compensation"),
        "{message}"
    );
    assert!(
        message.contains("saga \"card-payment\" step \"screen-fraud\""),
        "{message}"
    );
    assert_eq!(condition(&status, "Ready")["reason"], "DefinitionsInvalid");
    assert_eq!(
        h.sagas_data(),
        before,
        "the last valid definitions stay in force"
    );
    assert_eq!(h.config_hash(), hash);
    assert_eq!(h.events("DefinitionsInvalid").len(), 1);
    Ok(())
}

#[tokio::test]
async fn dependencies_ready_follows_the_payment_services() -> Result<()> {
    let h = start_sample(false).await?;
    let deps = |h: &Harness| condition(&h.status(SAMPLE), "DependenciesReady");
    h.eventually("not ready", |h| deps(h)["status"] == "False")
        .await?;
    assert!(
        deps(&h)["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not Ready: fraud-screening, ledger-service, payment-initiation-service")
    );
    for s in SERVICES {
        h.set_ready(s, true).await?;
    }
    h.eventually("ready", |h| deps(h)["status"] == "True")
        .await?;
    h.set_ready("ledger-service", false).await?;
    h.eventually("un-ready", |h| deps(h)["status"] == "False")
        .await?;
    assert!(
        deps(&h)["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not Ready: ledger-service")
    );
    assert_eq!(
        condition(&h.status(SAMPLE), "Ready")["status"],
        "True",
        "deployed regardless"
    );
    Ok(())
}

#[tokio::test]
async fn dependencies_ready_follows_the_cloudnativepg_cluster_when_installed() -> Result<()> {
    let h = cluster().crd(cnpg_crd()?).start().await?;
    h.create_secret().await?;
    for s in SERVICES {
        h.payment_service(s, true).await?;
    }
    h.create_as::<SagaOrchestrator>(sample()?).await?;
    let deps = |h: &Harness| condition(&h.status(SAMPLE), "DependenciesReady");
    h.eventually("cluster missing", |h| {
        deps(h)["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Cluster saga-db not found")
    })
    .await?;
    let gvk = GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Cluster");
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        h.client(),
        NS,
        &ApiResource::from_gvk_with_plural(&gvk, "clusters"),
    );
    let db = json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "saga-db", "namespace": NS}, "spec": {"instances": 3}});
    clusters
        .create(&PostParams::default(), &serde_json::from_value(db)?)
        .await?;
    let ready = json!({"status": {"instances": 3, "readyInstances": 3}});
    clusters
        .patch_status("saga-db", &PatchParams::default(), &Patch::Merge(&ready))
        .await?;
    h.eventually("cluster ready", |h| deps(h)["status"] == "True")
        .await?;
    let degraded = json!({"status": {"readyInstances": 1}});
    clusters
        .patch_status("saga-db", &PatchParams::default(), &Patch::Merge(&degraded))
        .await?;
    h.eventually("cluster degraded", |h| deps(h)["status"] == "False")
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_missing_persistence_secret_is_named_and_nothing_is_deployed() -> Result<()> {
    let h = cluster().start().await?;
    // Invalid definitions as well: they are named while the Secret is awaited, not after.
    let mut so = sample()?;
    so["spec"]["sagas"][0]["steps"][0]
        .as_object_mut()
        .map(|s| s.remove("compensation"));
    h.create_as::<SagaOrchestrator>(so).await?;
    let message = h.until_reason(SAMPLE, "Ready", "SecretMissing").await?;
    assert!(
        message.contains("Secret saga-db-app does not exist"),
        "{message}"
    );
    assert!(message.contains("compensation"), "{message}");
    assert!(h.get("apps/v1", "deployments", SAMPLE).is_none());
    Ok(())
}

#[tokio::test]
async fn deletion_stops_new_sagas_waits_for_running_ones_then_leaves_nothing() -> Result<()> {
    let h = start_sample(true).await?;
    let version = current(&h);
    h.report_in_flight(json!({format!("card-payment.{version}"): "3"}))
        .await?;
    h.orchestrators()
        .delete(SAMPLE, &DeleteParams::default())
        .await?;
    h.eventually("draining", |h| {
        index(h)["draining"] == true && h.status(SAMPLE)["phase"] == "Draining"
    })
    .await?;
    assert!(
        condition(&h.status(SAMPLE), "Ready")["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("card-payment/{version}: 3"))
    );
    h.report_in_flight(json!({format!("card-payment.{version}"): "0"}))
        .await?;
    h.eventually("released", |h| {
        h.get("payments.io/v1", "sagaorchestrators", SAMPLE)
            .is_none()
    })
    .await?;
    h.eventually("nothing left", |h| {
        h.get("apps/v1", "deployments", SAMPLE).is_none()
            && h.get("v1", "configmaps", "payment-saga-sagas").is_none()
            && h.get(
                "rbac.authorization.k8s.io/v1",
                "roles",
                "payment-saga-inflight",
            )
            .is_none()
    })
    .await?;
    assert_eq!(h.events("Drained").len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_drain_past_its_timeout_reports_what_still_ran_and_releases() -> Result<()> {
    let h = start_sample(true).await?;
    let version = current(&h);
    h.report_in_flight(json!({format!("card-payment.{version}"): "2"}))
        .await?;
    h.orchestrators()
        .delete(SAMPLE, &DeleteParams::default())
        .await?;
    h.eventually("draining", |h| h.status(SAMPLE)["phase"] == "Draining")
        .await?;
    h.advance(301);
    h.eventually("released", |h| {
        h.get("payments.io/v1", "sagaorchestrators", SAMPLE)
            .is_none()
    })
    .await?;
    let note = h.events("DrainTimedOut")[0]["note"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        note.contains(&format!("card-payment/{version}: 2")),
        "{note}"
    );
    Ok(())
}

/// Another team's ConfigMap under the definitions' name: never mounted, and DefinitionsValid
/// says the definitions are not in force instead of "valid and in force".
#[tokio::test]
async fn definitions_whose_configmap_is_someone_elses_are_not_in_force() -> Result<()> {
    let h = cluster().start().await?;
    h.create_secret().await?;
    for s in SERVICES {
        h.payment_service(s, true).await?;
    }
    let theirs: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": format!("{SAMPLE}-sagas"), "namespace": NS},
        "data": {"owner": "another team"}
    }))?;
    Api::namespaced(h.client(), NS)
        .create(&PostParams::default(), &theirs)
        .await?;
    h.create_as::<SagaOrchestrator>(sample()?).await?;
    h.until_reason(SAMPLE, "DefinitionsValid", "NotInForce")
        .await?;
    let valid = condition(&h.status(SAMPLE), "DefinitionsValid");
    assert_eq!(valid["status"], "False");
    assert!(
        valid["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("ConfigMap {SAMPLE}-sagas already exists"))),
        "{valid}"
    );
    assert!(
        h.get("apps/v1", "deployments", SAMPLE).is_none(),
        "no pod runs on another team's definitions"
    );
    Ok(())
}

/// Running sagas live in the persistence store: the API server refuses to switch it (a CRD
/// transition rule, no webhook here) and the orchestrator keeps its store.
#[tokio::test]
async fn the_persistence_store_cannot_change_under_running_sagas() -> Result<()> {
    let h = start_sample(true).await?;
    let refused = h
        .merge::<SagaOrchestrator>(
            NS,
            SAMPLE,
            json!({"spec": {"persistence": {"type": "redis"}}}),
        )
        .await
        .expect_err("the store is fixed")
        .to_string();
    assert!(
        refused
            .contains("spec.persistence.type: Forbidden: cannot change from postgresql to redis")
            && refused.contains("create a new SagaOrchestrator on the new store"),
        "{refused}"
    );
    let stored: SagaOrchestrator = Api::namespaced(h.client(), NS).get(SAMPLE).await?;
    assert_eq!(
        serde_json::to_value(stored.spec.persistence.type_)?,
        "postgresql"
    );
    // The rest of the spec still changes.
    h.merge::<SagaOrchestrator>(NS, SAMPLE, json!({"spec": {"replicas": 3}}))
        .await?;
    Ok(())
}
