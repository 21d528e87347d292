//! operator-core's apply, prune, status, finalizer and controller paths, end to end against
//! the in-memory API server.

use crate::common::*;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use operator_core::finalizer::{Cleanup, with_finalizer};
use operator_core::status::patch_status_if_changed;
use operator_core::{Applied, Children, Context, ControllerSettings, Error, OperatorController};
use serde_json::json;
use testkit::{ApiServer, Verb};

fn non_watch_requests(server: &ApiServer) -> u64 {
    let stats = server.stats();
    stats.total()
        - stats
            .by
            .iter()
            .filter(|((v, _), _)| *v == Verb::Watch)
            .map(|(_, c)| c.requests)
            .sum::<u64>()
}

#[tokio::test]
async fn apply_stamps_labels_owner_and_hash() -> Result<()> {
    let server = server_with_crd().await?;
    let owner = create_widget(&server, "w", 3).await?;
    let children = Children::<ConfigMap>::uncached(server.client(), IDENTITY);

    assert_eq!(
        children
            .apply(&owner, desired_configmap(&owner, "config"))
            .await?,
        Applied::Created
    );
    let cm = server
        .object("v1", "configmaps", "default", "w-config")
        .context("child created")?;
    let labels = &cm["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/name"], "widget");
    assert_eq!(labels["app.kubernetes.io/instance"], "w");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "widget-operator");
    assert_eq!(labels["app.kubernetes.io/part-of"], "payments-engine");
    let owner_ref = &cm["metadata"]["ownerReferences"][0];
    assert_eq!(owner_ref["controller"], true);
    assert_eq!(owner_ref["uid"], json!(owner.uid()));
    assert!(cm["metadata"]["annotations"]["payments-engine.io/desired-hash"].is_string());
    assert_eq!(
        cm["metadata"]["managedFields"][0]["manager"],
        "widget-operator"
    );
    Ok(())
}

#[tokio::test]
async fn converged_children_cost_no_write_and_drift_is_repaired() -> Result<()> {
    let server = server_with_crd().await?;
    let owner = create_widget(&server, "w", 3).await?;
    let children = Children::<ConfigMap>::uncached(server.client(), IDENTITY);
    children
        .apply(&owner, desired_configmap(&owner, "config"))
        .await?;

    // A new process (empty record) applies once, finds nothing to change, and says so.
    let restarted = Children::<ConfigMap>::uncached(server.client(), IDENTITY);
    let rv = server.resource_version();
    assert_eq!(
        restarted
            .apply(&owner, desired_configmap(&owner, "config"))
            .await?,
        Applied::Unchanged
    );
    assert_eq!(server.resource_version(), rv, "nothing was written");

    // Converged: the uncached skip check reads metadata once and writes nothing.
    server.reset_stats();
    assert_eq!(
        children
            .apply(&owner, desired_configmap(&owner, "config"))
            .await?,
        Applied::Unchanged
    );
    assert_eq!(server.stats().writes(), 0);

    // Someone edits the child: the next apply repairs it.
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.patch(
        "w-config",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"size": "99"}})),
    )
    .await?;
    assert_eq!(
        children
            .apply(&owner, desired_configmap(&owner, "config"))
            .await?,
        Applied::Updated
    );
    assert_eq!(
        cms.get("w-config").await?.data.unwrap_or_default()["size"],
        "3"
    );

    // Someone strips a standard label: repaired too.
    cms.patch(
        "w-config",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app.kubernetes.io/part-of": null}}})),
    )
    .await?;
    assert_eq!(
        children
            .apply(&owner, desired_configmap(&owner, "config"))
            .await?,
        Applied::Updated
    );
    let labels = cms
        .get("w-config")
        .await?
        .metadata
        .labels
        .unwrap_or_default();
    assert_eq!(labels["app.kubernetes.io/part-of"], "payments-engine");

    // Someone deletes the child: it comes back.
    cms.delete("w-config", &DeleteParams::default()).await?;
    assert_eq!(
        children
            .apply(&owner, desired_configmap(&owner, "config"))
            .await?,
        Applied::Created
    );

    // The spec changes: the child is updated in place (same uid).
    let uid = cms.get("w-config").await?.uid();
    let mut bigger = owner.clone();
    bigger.spec.size = 4;
    assert_eq!(
        children
            .apply(&bigger, desired_configmap(&bigger, "config"))
            .await?,
        Applied::Updated
    );
    let updated = cms.get("w-config").await?;
    assert_eq!(updated.uid(), uid);
    assert_eq!(updated.data.unwrap_or_default()["size"], "4");
    Ok(())
}

#[tokio::test]
async fn prune_deletes_only_this_owners_unwanted_children() -> Result<()> {
    let server = server_with_crd().await?;
    let owner = create_widget(&server, "w", 1).await?;
    let other = create_widget(&server, "other", 1).await?;
    let children = Children::<ConfigMap>::uncached(server.client(), IDENTITY);
    children
        .apply(&owner, desired_configmap(&owner, "a"))
        .await?;
    children
        .apply(&owner, desired_configmap(&owner, "b"))
        .await?;
    children
        .apply(&other, desired_configmap(&other, "b"))
        .await?;
    // A look-alike name that this owner does not control is never touched.
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "w-c", "labels": {"app.kubernetes.io/managed-by": "widget-operator"}}}))?).await?;

    let keep = BTreeSet::from(["w-a".to_string()]);
    let deleted = children.prune(&owner, &keep).await?;
    assert_eq!(deleted, vec!["w-b".to_string()]);
    let mut names: Vec<String> = server
        .objects("v1", "configmaps")
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(String::from))
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    names.sort();
    assert_eq!(names, vec!["other-b", "w-a", "w-c"]);
    Ok(())
}

#[tokio::test]
async fn status_is_written_only_when_it_differs() -> Result<()> {
    let server = server_with_crd().await?;
    let widget = create_widget(&server, "w", 1).await?;
    let api: Api<Widget> = Api::default_namespaced(server.client());
    let ready = WidgetStatus { ready: true };

    assert!(patch_status_if_changed(&api, "w", widget.status.as_ref(), &ready).await?);
    let stored = api.get("w").await?;
    assert_eq!(stored.status.as_ref(), Some(&ready));

    server.reset_stats();
    assert!(!patch_status_if_changed(&api, "w", stored.status.as_ref(), &ready).await?);
    assert_eq!(server.stats().total(), 0);
    Ok(())
}

#[tokio::test]
async fn finalizer_guards_cleanup() -> Result<()> {
    let server = server_with_crd().await?;
    create_widget(&server, "w", 1).await?;
    let api: Api<Widget> = Api::default_namespaced(server.client());
    let applies = AtomicUsize::new(0);
    let applied = || async {
        applies.fetch_add(1, Ordering::SeqCst);
        Ok(Action::await_change())
    };
    let never_cleans = |_, _| async { Ok(Cleanup::Done) };

    // First pass: only the finalizer is added; the apply branch has not run yet.
    let w = Arc::new(api.get("w").await?);
    with_finalizer(&api, "example.io/cleanup", w, |_| applied(), never_cleans).await?;
    assert_eq!(applies.load(Ordering::SeqCst), 0);
    assert_eq!(api.get("w").await?.finalizers(), ["example.io/cleanup"]);

    // Second pass: apply runs.
    let w = Arc::new(api.get("w").await?);
    with_finalizer(&api, "example.io/cleanup", w, |_| applied(), never_cleans).await?;
    assert_eq!(applies.load(Ordering::SeqCst), 1);

    // Deleting: a failing cleanup keeps the finalizer and surfaces as a Cleanup error.
    api.delete("w", &DeleteParams::default()).await?;
    let w = Arc::new(api.get("w").await?);
    let failed = with_finalizer(
        &api,
        "example.io/cleanup",
        w,
        |_| applied(),
        |_, _| async {
            Err::<Cleanup, _>(Error::Kube(kube::Error::Api(Box::new(
                kube::core::Status::failure("drain failed", "ServiceUnavailable").with_code(503),
            ))))
        },
    )
    .await;
    let err = failed.err().context("cleanup should fail")?;
    assert_eq!(err.reason(), "CleanupFailed");
    assert!(!err.is_spec_error(), "a failed cleanup is retried");
    assert_eq!(api.get("w").await?.finalizers(), ["example.io/cleanup"]);

    // A cleanup still waiting keeps the finalizer and asks to be looked at again.
    let w = Arc::new(api.get("w").await?);
    let waiting = with_finalizer(
        &api,
        "example.io/cleanup",
        w,
        |_| applied(),
        |_, _| async { Ok(Cleanup::Waiting(Duration::from_secs(2))) },
    )
    .await?;
    assert_eq!(waiting, Action::requeue(Duration::from_secs(2)));
    assert_eq!(api.get("w").await?.finalizers(), ["example.io/cleanup"]);

    // A finished cleanup releases the object; apply never ran while deleting.
    let w = Arc::new(api.get("w").await?);
    with_finalizer(&api, "example.io/cleanup", w, |_| applied(), never_cleans).await?;
    assert!(api.get_opt("w").await?.is_none());
    assert_eq!(applies.load(Ordering::SeqCst), 1);
    Ok(())
}

fn start_operator(server: &ApiServer, resync: Duration) -> Arc<AtomicUsize> {
    let client = server.client();
    let (children, watches) = widget_children(client.clone(), None);
    let operator = WidgetOperator::default();
    let reconciles = operator.reconciles.clone();
    let settings = ControllerSettings {
        resync,
        ..ControllerSettings::default()
    };
    let ctx = Context::new(client, IDENTITY, settings, operator).with_children(children);
    let controller = OperatorController::<Widget, _>::new(ctx).owns_children(watches);
    tokio::spawn(controller.run(reconcile_widget));
    reconciles
}

#[tokio::test]
async fn controller_converges_repairs_and_then_stays_quiet() -> Result<()> {
    let server = server_with_crd().await?;
    start_operator(&server, Duration::from_millis(200));
    create_widget(&server, "w", 2).await?;

    eventually("child and status", || {
        server
            .object("v1", "configmaps", "default", "w-config")
            .is_some()
            && server
                .object("example.io/v1", "widgets", "default", "w")
                .is_some_and(|w| w["status"]["ready"] == true)
    })
    .await?;

    // Deleting the child triggers the owner (via the child watch) and it is restored.
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.delete("w-config", &DeleteParams::default()).await?;
    eventually("child restored", || {
        server
            .object("v1", "configmaps", "default", "w-config")
            .is_some()
    })
    .await?;

    // Converged: several resyncs (every 200ms) pass with no write at all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.reset_stats();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stats = server.stats();
    assert_eq!(
        stats.writes(),
        0,
        "a converged resync writes nothing: {stats:?}"
    );
    assert_eq!(
        non_watch_requests(&server),
        0,
        "nor reads: the skip check uses the cache"
    );

    // A spec change reaches the child.
    let api: Api<Widget> = Api::default_namespaced(server.client());
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 7}})),
    )
    .await?;
    eventually("child updated", || {
        server
            .object("v1", "configmaps", "default", "w-config")
            .is_some_and(|cm| cm["data"]["size"] == "7")
    })
    .await?;

    // Deleting the owner garbage-collects the child.
    api.delete("w", &DeleteParams::default()).await?;
    assert!(
        server
            .object("v1", "configmaps", "default", "w-config")
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn invalid_spec_is_reported_and_not_hot_looped() -> Result<()> {
    let server = server_with_crd().await?;
    let reconciles = start_operator(&server, Duration::from_secs(30));
    create_widget(&server, "bad", -1).await?;

    eventually("warning event", || {
        server
            .objects("events.k8s.io/v1", "events")
            .iter()
            .any(|e| {
                e["reason"] == "InvalidSpec"
                    && e["type"] == "Warning"
                    && e["regarding"]["name"] == "bad"
                    && e["note"]
                        .as_str()
                        .is_some_and(|n| n.contains("spec.size: must be at least 0"))
            })
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        reconciles.load(Ordering::SeqCst) <= 2,
        "a spec error waits for a spec change or the resync"
    );
    assert!(
        server
            .object("v1", "configmaps", "default", "bad-config")
            .is_none(),
        "nothing applied"
    );
    Ok(())
}

#[tokio::test]
async fn transient_api_errors_back_off_and_converge() -> Result<()> {
    let server = server_with_crd().await?;
    server.set_faults(testkit::Faults {
        seed: 3,
        rules: vec![testkit::FaultRule {
            verbs: vec![Verb::Apply],
            resources: vec!["configmaps".into()],
            rate: 0.5,
            fault: testkit::Fault::ServerError,
        }],
        ..testkit::Faults::default()
    });
    start_operator(&server, Duration::from_secs(30));
    for i in 0..5 {
        create_widget(&server, &format!("w{i}"), i).await?;
    }
    eventually("all children despite faults", || {
        (0..5).all(|i| {
            server
                .object("v1", "configmaps", "default", &format!("w{i}-config"))
                .is_some()
        })
    })
    .await?;
    let applies = server.stats().count(Verb::Apply, "configmaps");
    assert!(
        applies < 60,
        "backoff bounds retries: {applies} applies for 5 children"
    );
    Ok(())
}

/// After a release, a pass can still be handed a cached copy from before it (a restart, or
/// the release's watch event on its way): its cleanup finds the object gone, and that is the
/// end of it, not a failure reported as a warning.
#[tokio::test]
async fn a_stale_copy_of_a_released_object_ends_quietly() -> Result<()> {
    let server = server_with_crd().await?;
    create_widget(&server, "w", 1).await?;
    let api: Api<Widget> = Api::default_namespaced(server.client());
    let finalizer = "example.io/cleanup";
    let w = Arc::new(api.get("w").await?);
    with_finalizer(
        &api,
        finalizer,
        w,
        |_| async { Ok(Action::await_change()) },
        |_, _| async { Ok(Cleanup::Done) },
    )
    .await?;
    api.delete("w", &DeleteParams::default()).await?;
    let stale = Arc::new(api.get("w").await?);
    with_finalizer(
        &api,
        finalizer,
        stale.clone(),
        |_| async { Ok(Action::await_change()) },
        |_, _| async { Ok(Cleanup::Done) },
    )
    .await?;
    assert!(api.get_opt("w").await?.is_none(), "released");

    // The stale copy again: the cleanup's own writes find nothing, and neither does the release.
    let api2 = api.clone();
    let again = with_finalizer(
        &api,
        finalizer,
        stale,
        |_| async { Ok(Action::await_change()) },
        |w: Arc<Widget>, _| async move {
            patch_status_if_changed(
                &api2,
                "w",
                w.status.as_ref(),
                &WidgetStatus { ready: false },
            )
            .await?;
            Ok(Cleanup::Done)
        },
    )
    .await;
    assert_eq!(
        again.map_err(|e| anyhow::anyhow!("{e}"))?,
        Action::await_change()
    );
    Ok(())
}

/// A cache's readiness is seen by a waiter beside the controller's own runner: kube's signal
/// wakes only the last poller, which left an operator that started with objects never ready.
#[tokio::test]
async fn a_cache_is_seen_filled_by_every_waiter() -> Result<()> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    for name in ["a", "b", "c"] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        cms.create(&PostParams::default(), &cm).await?;
    }
    let (store, writer) = reflector::store::<ConfigMap>();
    let ours = tokio::spawn({
        let store = store.clone();
        async move { operator_core::readiness::cache_filled(&store).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The controller's runner waits after us, taking the only waker.
    let runner = tokio::spawn({
        let store = store.clone();
        async move { store.wait_until_ready().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let filling = tokio::spawn(
        watcher(cms, watcher::Config::default())
            .reflect(writer)
            .for_each(|_| std::future::ready(())),
    );
    tokio::time::timeout(Duration::from_secs(5), ours).await???;
    assert_eq!(store.state().len(), 3);
    // The runner holds the one waker and nothing else wakes this stand-in (kube's runner is
    // woken by its watch events): it is left waiting, as ours was before it looked again.
    runner.abort();
    filling.abort();
    Ok(())
}
