//! Every sample as users apply it (`kubectl kustomize deploy/samples`: nine resources of the
//! five kinds) in one namespace, with all five operators running side by side as their own
//! ServiceAccounts: each operator reports on each of its resources, and `kubectl payments
//! status -A` lists all nine, each with its readiness and what to do. Then `kubectl payments
//! backup` of the namespace, the namespace wiped, `restore`: the operators rebuild the same
//! children. Skipped without `E2E_CLUSTER=1`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use e2e::operator::Operator;
use e2e::scenario::{
    BATCH_PROCESSOR, CLEARING_ADAPTER, Kind, PAYMENT_SERVICE, SAGA_ORCHESTRATOR, TRADING_ALGORITHM,
};
use e2e::until;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Client, ResourceExt};
use kubectl_payments::{backup, restore, status};
use serde_json::{Value, json};

use crate::manifests::OPERATORS;
use crate::payment_service::stored;

const KINDS: [Kind; 5] = [
    PAYMENT_SERVICE,
    TRADING_ALGORITHM,
    BATCH_PROCESSOR,
    CLEARING_ADAPTER,
    SAGA_ORCHESTRATOR,
];

/// A sample made ready for this namespace: the operators here run no conversion webhook (v1
/// PaymentServices are stored as v2), and no check leaves the machine (the adapter's partners
/// are pointed at a closed port on loopback).
fn placed(mut sample: Value, namespace: &str) -> Value {
    sample["metadata"]["namespace"] = json!(namespace);
    if sample["kind"] == "PaymentService" {
        stored(&mut sample);
    }
    if sample["kind"] == "ClearingAdapter" {
        let partners = &mut sample["spec"]["config"]["bankingPartners"];
        for partner in partners.as_array_mut().into_iter().flatten() {
            partner["endpoint"] = json!("https://127.0.0.1:9");
        }
    }
    sample
}

#[tokio::test]
async fn status_across_namespaces_lists_every_sample_with_all_five_operators_running() -> Result<()>
{
    let Some(ns) = e2e::cluster("every-sample").await? else {
        return Ok(());
    };
    let mut processes = Vec::new();
    for descriptor in OPERATORS {
        let operator = Operator::of(descriptor);
        ns.grant(&operator).await?;
        processes.push(ns.start_operator(&operator, "a", false).await?);
    }
    let samples = e2e::manifests::render("samples")?;
    ensure!(
        samples.len() == 9,
        "deploy/samples renders {}",
        samples.len()
    );
    for sample in samples {
        let sample = placed(sample, &ns.name);
        let kind = KINDS
            .into_iter()
            .find(|k| sample["kind"] == k.kind)
            .with_context(|| format!("a sample of kind {}", sample["kind"]))?;
        ns.api(kind)
            .create(&PostParams::default(), &serde_json::from_value(sample)?)
            .await?;
    }

    // Each operator has reported on each of its resources: Ready is True or False, never
    // the Unknown of a resource no operator has looked at, and says what to do.
    let rows = until(
        "a report on every sample",
        Duration::from_secs(120),
        || async {
            let rows: Vec<_> = status::rows(&ns.client, None)
                .await?
                .into_iter()
                .filter(|r| r.namespace == ns.name)
                .collect();
            let reported = rows.len() == 9 && rows.iter().all(|r| r.ready != "Unknown");
            Ok(reported.then_some(rows))
        },
    )
    .await?;
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &rows {
        *kinds.entry(row.kind.as_str()).or_default() += 1;
        ensure!(!row.phase.is_empty() && !row.message.is_empty(), "{row:?}");
    }
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("BatchProcessor", 1),
            ("ClearingAdapter", 1),
            ("PaymentService", 3),
            ("SagaOrchestrator", 1),
            ("TradingAlgorithm", 3),
        ])
    );
    let table = status::table(&rows, true);
    println!("{table}");
    let listed = table.lines().filter(|l| l.starts_with(&ns.name)).count();
    ensure!(listed == 9, "nine rows:\n{table}");

    // Before the wipe: deleting the namespace takes the operators' RoleBindings with it while
    // they still release their resources, which the API server logs as denials.
    for process in &processes {
        process.assert_no_rbac_denials()?;
    }
    backed_up_wiped_and_restored(&ns.client, &ns.name).await?;
    ns.cleanup().await
}

/// The operators' children in `namespace`, by kind and name.
async fn children(client: &Client, namespace: &str) -> Result<Vec<String>> {
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by");
    let mut names = Vec::new();
    for (api_version, kind) in [
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("batch/v1", "CronJob"),
    ] {
        let resource = backup::resource_of(api_version, kind);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        for object in api.list(&managed).await? {
            names.push(format!("{kind}/{}", object.name_any()));
        }
    }
    names.sort();
    Ok(names)
}

/// Backs the namespace up, deletes it (the operators let it go), restores it, and waits for
/// the operators to rebuild the children it had.
async fn backed_up_wiped_and_restored(client: &Client, namespace: &str) -> Result<()> {
    let before = children(client, namespace).await?;
    ensure!(!before.is_empty(), "the samples have children");
    let dir = e2e::operator::work_dir().join(namespace).join("backup");
    let manifest = backup::backup(client, Some(namespace), &dir).await?;
    let resources = manifest
        .objects
        .iter()
        .find(|(f, _)| f == "4-resources.yaml");
    ensure!(resources.is_some_and(|(_, n)| *n == 9), "{manifest:?}");

    let nss: Api<Namespace> = Api::all(client.clone());
    nss.delete(namespace, &DeleteParams::background()).await?;
    e2e::gone(&nss, namespace, Duration::from_secs(120)).await?;

    let report = restore::restore(client, &dir, false).await?;
    ensure!(
        report.contains(&format!("create Namespace {namespace}")),
        "{report:?}"
    );
    let rebuilt = until(
        "the same children again",
        Duration::from_secs(120),
        || async {
            let now = children(client, namespace).await?;
            Ok((now == before).then_some(now))
        },
    )
    .await;
    rebuilt.with_context(|| format!("before the wipe: {before:?}"))?;
    let again = restore::restore(client, &dir, true).await?;
    ensure!(
        again
            .iter()
            .filter(|l| !l.starts_with("missing Secret"))
            .all(|l| l.starts_with("unchanged ")),
        "{again:?}"
    );
    Ok(())
}
