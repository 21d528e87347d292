//! Fault tolerance: with the API server failing, throttling, conflicting, slow and cutting
//! watches, 200 PaymentServices still converge and then upgrade — no child duplicated or
//! orphaned, no rollout judged failed, no finalizer skipped, no panic — and backoff keeps the
//! request rate bounded. A crash in the middle of convergence leaves nothing a new operator
//! has to redo. Seeded, so a failure reproduces.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use operator_core::runtime::config::RuntimeConfig;
use operator_core::runtime::{self, metrics::Metrics};
use operator_core::{Backoff, ControllerSettings};
use payment_service::crd::PaymentService;
use payment_service::{Options, controllers};
use serde_json::{Value, json};
use testkit::{ApiServer, Faults};

const NS: &str = "payments";
const MANAGER: &str = "payment-service-operator";

async fn cluster() -> Result<ApiServer> {
    let server = ApiServer::new();
    let client = server.client();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &PaymentService::crd())
        .await?;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}}))?;
    Api::<Namespace>::all(client)
        .create(&PostParams::default(), &ns)
        .await?;
    server.simulate_workloads();
    Ok(server)
}

fn name(i: usize) -> String {
    format!("svc-{i:03}")
}

/// Every fourth service has backups on, so those children are exercised too.
fn has_backup(i: usize) -> bool {
    i.is_multiple_of(4)
}

fn service(i: usize) -> Result<PaymentService> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "payments.io/v1", "kind": "PaymentService",
        "metadata": {"name": name(i), "namespace": NS},
        "spec": {
            "version": "1.0.0",
            "image": "registry.example/payments:1.0.0",
            "replicas": 2,
            "config": {"database": {"clusterName": "db", "poolSize": 10}},
            "security": {"rbac": {"enabled": true}},
            "backup": {"enabled": has_backup(i)},
        }
    }))?)
}

async fn create(server: &ApiServer, count: usize) -> Result<()> {
    let api: Api<PaymentService> = Api::namespaced(server.client(), NS);
    for i in 0..count {
        api.create(&PostParams::default(), &service(i)?).await?;
    }
    Ok(())
}

/// Runs an operator until the returned sender says stop (or the task is aborted).
fn operator(server: &ApiServer) -> runtime::Background {
    let config = RuntimeConfig::standalone(ControllerSettings {
        resync: Duration::from_secs(5),
        concurrency: 8,
        backoff: Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_secs(2),
            jitter: 0.2,
        },
        namespace: None,
    });
    runtime::spawn(server.client(), config, Metrics::new(), |rt| {
        controllers(rt, Options::default())
    })
}

fn services(server: &ApiServer) -> Vec<Value> {
    server.objects("payments.io/v1", "paymentservices")
}

fn running_at(server: &ApiServer, version: &str) -> usize {
    services(server)
        .iter()
        .filter(|s| s["status"]["phase"] == "Running" && s["status"]["currentVersion"] == version)
        .count()
}

async fn until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{what} did not happen within {limit:?}")
}

/// The children one service has, by kind: `(api version, plural, name)`.
fn expected_children(name: &str, backup: bool) -> Vec<(&'static str, &'static str, String)> {
    let mut children = vec![
        ("apps/v1", "deployments", name.to_string()),
        ("v1", "services", name.to_string()),
        ("policy/v1", "poddisruptionbudgets", name.to_string()),
        ("v1", "serviceaccounts", name.to_string()),
    ];
    if backup {
        let b = format!("{name}-backup");
        children.extend([
            ("v1", "serviceaccounts", b.clone()),
            ("batch/v1", "cronjobs", b.clone()),
            ("rbac.authorization.k8s.io/v1", "roles", b.clone()),
            ("rbac.authorization.k8s.io/v1", "rolebindings", b),
            ("v1", "persistentvolumeclaims", format!("{name}-backups")),
        ]);
    }
    children
}

const KINDS: [(&str, &str); 7] = [
    ("apps/v1", "deployments"),
    ("v1", "services"),
    ("policy/v1", "poddisruptionbudgets"),
    ("v1", "serviceaccounts"),
    ("batch/v1", "cronjobs"),
    ("rbac.authorization.k8s.io/v1", "roles"),
    ("rbac.authorization.k8s.io/v1", "rolebindings"),
];

/// Every child belongs to a service that exists, and each service has exactly its own.
fn assert_children_consistent(server: &ApiServer) {
    let owners: BTreeMap<String, String> = services(server)
        .iter()
        .map(|s| {
            (
                s["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                s["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let mut actual = Vec::new();
    for (api_version, plural) in KINDS {
        for child in server.objects(api_version, plural) {
            if child["metadata"]["labels"]["app.kubernetes.io/managed-by"] != MANAGER {
                continue;
            }
            let owner = child["metadata"]["ownerReferences"][0]["uid"]
                .as_str()
                .unwrap_or_default();
            assert!(
                owners.contains_key(owner),
                "orphaned {plural}: {}",
                child["metadata"]["name"]
            );
            actual.push(format!(
                "{plural}/{}",
                child["metadata"]["name"].as_str().unwrap_or_default()
            ));
        }
    }
    let mut expected: Vec<String> = owners
        .values()
        .flat_map(|name| {
            let i: usize = name.trim_start_matches("svc-").parse().unwrap_or(1);
            expected_children(name, has_backup(i))
        })
        .filter(|(_, plural, _)| *plural != "persistentvolumeclaims")
        .map(|(_, plural, name)| format!("{plural}/{name}"))
        .collect();
    actual.sort();
    expected.sort();
    assert_eq!(actual, expected, "exactly each service's own children");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_services_converge_and_upgrade_under_faults() -> Result<()> {
    let server = cluster().await?;
    create(&server, 200).await?;
    server.reset_stats();
    server.set_faults(Faults::chaos(7));
    let (stop, task) = operator(&server);
    until("200 Running under faults", Duration::from_secs(120), || {
        running_at(&server, "1.0.0") == 200
    })
    .await?;
    assert_children_consistent(&server);

    // Backoff keeps the cost bounded: a fault-free convergence costs about 20 requests per
    // service (finalizer, 4 to 9 applies, a Deployment list per pass, status, events).
    let stats = server.stats();
    let per_service = stats.total() as f64 / 200.0;
    let faulted: u64 = stats.by.values().map(|c| c.faulted).sum();
    eprintln!(
        "converge under faults: {per_service:.1} requests per service, {faulted} faulted, {} writes",
        stats.writes()
    );
    assert!(
        per_service < 90.0,
        "{per_service:.1} requests per service under faults: {stats:?}"
    );
    assert!(faulted > 100, "the faults did fire ({faulted})");

    // Every service upgrades under the same faults; none is judged failed.
    let api: Api<PaymentService> = Api::namespaced(server.client(), NS);
    let upgrade = json!({"spec": {"version": "1.1.0", "image": "registry.example/payments:1.1.0"}});
    for i in 0..200 {
        loop {
            match api
                .patch(&name(i), &PatchParams::default(), &Patch::Merge(&upgrade))
                .await
            {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    until(
        "200 upgraded under faults",
        Duration::from_secs(120),
        || running_at(&server, "1.1.0") == 200,
    )
    .await?;
    assert!(
        services(&server)
            .iter()
            .all(|s| s["status"]["failedRollout"].is_null()),
        "no rollout was judged failed"
    );
    assert_children_consistent(&server);

    // Deleting 50 under faults: every finalizer runs its cleanup, none is skipped. The record
    // of each cleanup is its status (events are best effort, and faults drop some).
    server.audit("payments.io/v1", "paymentservices");
    for i in 0..50 {
        loop {
            match api.delete(&name(i), &DeleteParams::default()).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 404 => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    until("50 deleted", Duration::from_secs(120), || {
        services(&server).len() == 150
    })
    .await?;
    let cleaned: BTreeSet<String> = server
        .audit_trail("payments.io/v1", "paymentservices")
        .into_iter()
        .filter(|ps| ps["status"]["cleanup"].is_object())
        .filter_map(|ps| ps["metadata"]["name"].as_str().map(String::from))
        .collect();
    for i in 0..50 {
        assert!(
            cleaned.contains(&name(i)),
            "{} left without its cleanup",
            name(i)
        );
        if has_backup(i) {
            let claim = server.object(
                "v1",
                "persistentvolumeclaims",
                NS,
                &format!("{}-backups", name(i)),
            );
            assert!(
                claim.is_some_and(|c| c["metadata"]["ownerReferences"].is_null()),
                "{}'s backups were kept",
                name(i)
            );
        }
    }
    until("garbage collected", Duration::from_secs(30), || {
        std::panic::catch_unwind(|| assert_children_consistent(&server)).is_ok()
    })
    .await?;

    server.set_faults(Faults::default());
    stop.send_replace(true);
    task.await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_convergence_leaves_nothing_to_redo() -> Result<()> {
    let server = cluster().await?;
    create(&server, 100).await?;
    let (_, first) = operator(&server);
    until("some Running", Duration::from_secs(60), || {
        running_at(&server, "1.0.0") >= 30
    })
    .await?;
    // The crash: the operator's whole runtime goes, mid-flight.
    first.abort();
    let _ = first.await;
    let stable_kinds = [
        ("v1", "services"),
        ("policy/v1", "poddisruptionbudgets"),
        ("v1", "serviceaccounts"),
        ("rbac.authorization.k8s.io/v1", "roles"),
    ];
    let before: BTreeMap<String, String> = stable_kinds
        .iter()
        .flat_map(|(v, p)| server.objects(v, p))
        .filter(|c| c["metadata"]["labels"]["app.kubernetes.io/managed-by"] == MANAGER)
        .map(|c| {
            (
                format!("{}/{}", c["kind"], c["metadata"]["name"]),
                c["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();

    let (stop, second) = operator(&server);
    until("all Running after restart", Duration::from_secs(60), || {
        running_at(&server, "1.0.0") == 100
    })
    .await?;
    assert_children_consistent(&server);

    // What the first operator had applied was not written again (Deployments, CronJobs and
    // claims aside: the simulated controllers write their status).
    let rewritten: Vec<String> = stable_kinds
        .iter()
        .flat_map(|(v, p)| server.objects(v, p))
        .filter_map(|c| {
            let key = format!("{}/{}", c["kind"], c["metadata"]["name"]);
            let version = before.get(&key)?;
            (c["metadata"]["resourceVersion"].as_str() != Some(version.as_str())).then_some(key)
        })
        .collect();
    assert!(
        rewritten.is_empty(),
        "rewritten after restart: {rewritten:?}"
    );
    stop.send_replace(true);
    second.await??;
    Ok(())
}
