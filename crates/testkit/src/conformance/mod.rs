//! The conformance suite: each API-server behaviour the operators depend on, written once
//! against a `kube::Client` and a namespace, and run on two backends — testkit in-process
//! (`crates/testkit/tests/conformance.rs`) and a real kube-apiserver (`e2e/tests/
//! conformance.rs`, on the real control plane or a cluster). Where the two disagree, testkit
//! is wrong; the deliberate differences are listed in the crate's README.
//!
//! Every case works in the namespace it is given (a few create a namespace or a CRD of their
//! own, named after it, and remove them), and waits for what a real server does
//! asynchronously (garbage collection, namespace deletion, CRD establishment).
//!
//! [`conformance_cases!`](crate::conformance_cases) names every case, so a backend runs them
//! all with one line per backend.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy, WatchEvent,
    WatchParams,
};
use kube::core::DynamicObject;
use serde_json::{Value, json};

/// Where a case runs: a client with the rights of a cluster admin, and a namespace of its own.
#[derive(Clone)]
pub struct Backend {
    pub client: kube::Client,
    pub namespace: String,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Backend {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

/// Invokes `$run!(case)` for every case of the suite.
#[macro_export]
macro_rules! conformance_cases {
    ($run:ident) => {
        $run!(create_get_replace_conflicts_and_missing);
        $run!(generation_is_kept_only_by_kinds_that_have_one);
        $run!(status_subresource_separates_spec_and_status);
        $run!(json_patch_test_and_merge_patch_removal);
        $run!(server_side_apply_tracks_owners_and_updates_take_fields_over);
        $run!(finalizers_hold_deletion_until_removed);
        $run!(garbage_collection_background_foreground_orphan);
        $run!(a_terminating_namespace_refuses_new_objects_events_included);
        $run!(list_with_selectors_and_pages);
        $run!(metadata_only_list);
        $run!(both_event_apis_share_one_store);
        $run!(dry_run_writes_nothing);
        $run!(openapi_v2_describes_builtin_and_custom_kinds);
        $run!(crds_make_kinds_servable_validated_pruned_and_defaulted);
        $run!(transition_rules_judge_an_update_by_the_old_object);
        $run!(watch_delivers_changes_from_a_resource_version);
        $run!(a_streaming_list_sends_the_objects_then_a_bookmark);
        $run!(tables_for_kubectl_get_and_get_watch);
        $run!(deletion_preconditions_and_collections);
        $run!(secret_string_data_is_stored_as_data);
        $run!(a_patch_naming_a_uid_applies_only_to_that_object);
        $run!(label_values_and_data_size_are_bounded);
        $run!(container_resources_are_read_and_limits_hold);
    };
}

mod crds;
use crds::install_gadgets;
pub use crds::{
    crds_make_kinds_servable_validated_pruned_and_defaulted,
    openapi_v2_describes_builtin_and_custom_kinds,
    transition_rules_judge_an_update_by_the_old_object,
};

fn configmap(name: &str, data: Value) -> Result<ConfigMap> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data
    }))?)
}

fn deployment(name: &str, replicas: i32, image: &str) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]}
            }
        }
    }))?)
}

/// The code and reason of a failed request; `None` if it succeeded or failed otherwise.
fn api_error<T>(r: Result<T, kube::Error>) -> Option<(u16, String)> {
    match r {
        Err(kube::Error::Api(s)) => Some((s.code, s.reason)),
        _ => None,
    }
}

/// Polls `check` (20 s at most): what a real server does asynchronously.
async fn eventually<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    for _ in 0..200 {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{what} did not happen within 20s")
}

pub async fn create_get_replace_conflicts_and_missing(b: &Backend) -> Result<()> {
    let cms: Api<ConfigMap> = b.api();
    let created = cms
        .create(&PostParams::default(), &configmap("a", json!({"k": "v"}))?)
        .await?;
    ensure!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let again = cms
        .create(&PostParams::default(), &configmap("a", json!({}))?)
        .await;
    ensure!(api_error(again) == Some((409, "AlreadyExists".into())));

    let mut fresh = cms.get("a").await?;
    fresh.data = Some([("k".to_string(), "w".to_string())].into());
    let updated = cms.replace("a", &PostParams::default(), &fresh).await?;
    ensure!(updated.metadata.resource_version != created.metadata.resource_version);
    let stale = cms.replace("a", &PostParams::default(), &fresh).await;
    ensure!(
        api_error(stale) == Some((409, "Conflict".into())),
        "a stale resourceVersion conflicts"
    );
    ensure!(api_error(cms.get("nope").await) == Some((404, "NotFound".into())));

    let mut generated = configmap("", json!({}))?;
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let g = cms.create(&PostParams::default(), &generated).await?;
    ensure!(
        g.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("gen-") && n.len() > 4)
    );

    let elsewhere: Api<ConfigMap> =
        Api::namespaced(b.client.clone(), &format!("{}-absent", b.namespace));
    let r = elsewhere
        .create(&PostParams::default(), &configmap("a", json!({}))?)
        .await;
    ensure!(
        api_error(r) == Some((404, "NotFound".into())),
        "no namespace, no object"
    );
    Ok(())
}

pub async fn generation_is_kept_only_by_kinds_that_have_one(b: &Backend) -> Result<()> {
    let deps: Api<Deployment> = b.api();
    let d = deps
        .create(&PostParams::default(), &deployment("web", 1, "nginx:1")?)
        .await?;
    ensure!(d.metadata.generation == Some(1));
    let labelled = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await?;
    ensure!(
        labelled.metadata.generation == Some(1),
        "metadata changes keep generation"
    );
    let status = deps
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 1}})),
        )
        .await?;
    ensure!(
        status.metadata.generation == Some(1),
        "status changes keep generation"
    );
    let scaled = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await?;
    ensure!(scaled.metadata.generation == Some(2));

    // Kinds whose registry strategy keeps no generation.
    let cm = b
        .api::<ConfigMap>()
        .create(&PostParams::default(), &configmap("g", json!({}))?)
        .await?;
    ensure!(
        cm.metadata.generation.is_none(),
        "ConfigMap: {:?}",
        cm.metadata.generation
    );
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": "g"}, "spec": {"ports": [{"port": 80}]}}),
    )?;
    let svc = b
        .api::<Service>()
        .create(&PostParams::default(), &svc)
        .await?;
    ensure!(
        svc.metadata.generation.is_none(),
        "Service: {:?}",
        svc.metadata.generation
    );
    let hpa: HorizontalPodAutoscaler =
        serde_json::from_value(json!({"metadata": {"name": "g"}, "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1, "maxReplicas": 3}}))?;
    let hpa = b
        .api::<HorizontalPodAutoscaler>()
        .create(&PostParams::default(), &hpa)
        .await?;
    ensure!(
        hpa.metadata.generation.is_none(),
        "HorizontalPodAutoscaler: {:?}",
        hpa.metadata.generation
    );
    Ok(())
}

pub async fn status_subresource_separates_spec_and_status(b: &Backend) -> Result<()> {
    let deps: Api<Deployment> = b.api();
    deps.create(&PostParams::default(), &deployment("web", 1, "nginx:1")?)
        .await?;
    let main = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"collisionCount": 9}})),
        )
        .await?;
    ensure!(
        main.status.and_then(|s| s.collision_count).is_none(),
        "the main resource ignores status"
    );
    let st = deps
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 7}, "status": {"collisionCount": 1}})),
        )
        .await?;
    ensure!(
        st.spec.and_then(|s| s.replicas) == Some(1),
        "/status ignores the spec"
    );
    ensure!(st.status.and_then(|s| s.collision_count) == Some(1));
    Ok(())
}

pub async fn json_patch_test_and_merge_patch_removal(b: &Backend) -> Result<()> {
    let cms: Api<ConfigMap> = b.api();
    cms.create(
        &PostParams::default(),
        &configmap("a", json!({"k": "v", "drop": "me"}))?,
    )
    .await?;
    let removed = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"drop": null}})),
        )
        .await?;
    ensure!(removed.data.unwrap_or_default().len() == 1);
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x.io/y"]}
    ]))?;
    let with = cms
        .patch("a", &PatchParams::default(), &Patch::Json::<()>(patch))
        .await?;
    ensure!(with.metadata.finalizers == Some(vec!["x.io/y".to_string()]));
    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/k", "value": "other"},
        {"op": "replace", "path": "/data/k", "value": "new"}
    ]))?;
    let r = cms
        .patch("a", &PatchParams::default(), &Patch::Json::<()>(failing))
        .await;
    ensure!(
        api_error(r).map(|e| e.0) == Some(422),
        "a failed test is 422"
    );
    ensure!(cms.get("a").await?.data.unwrap_or_default()["k"] == "v");
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    Ok(())
}

fn managers_of(
    fields: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry>>,
    path: &[&str],
) -> Vec<String> {
    fields
        .into_iter()
        .flatten()
        .filter(|m| {
            let mut at = m.fields_v1.as_ref().map(|f| &f.0);
            for p in path {
                at = at.and_then(|v| v.get(*p));
            }
            at.is_some()
        })
        .filter_map(|m| m.manager.clone())
        .collect()
}

pub async fn server_side_apply_tracks_owners_and_updates_take_fields_over(
    b: &Backend,
) -> Result<()> {
    let deps: Api<Deployment> = b.api();
    let op = PatchParams::apply("operator").force();
    let d = deps
        .patch("web", &op, &Patch::Apply(deployment("web", 2, "nginx:1")?))
        .await?;
    ensure!(
        managers_of(
            d.metadata.managed_fields.as_ref(),
            &["f:spec", "f:replicas"]
        ) == ["operator"]
    );
    // A no-op apply writes nothing (a ConfigMap: no controller writes its status meanwhile).
    let cms: Api<ConfigMap> = b.api();
    let settings = configmap("settings", json!({"mode": "fast"}))?;
    let first = cms.patch("settings", &op, &Patch::Apply(&settings)).await?;
    let again = cms.patch("settings", &op, &Patch::Apply(&settings)).await?;
    ensure!(
        again.metadata.resource_version == first.metadata.resource_version,
        "a no-op apply writes nothing"
    );

    let human = PatchParams::apply("human");
    let mut edit = deployment("web", 5, "nginx:1")?;
    edit.metadata.labels = None;
    let r = deps.patch("web", &human, &Patch::Apply(edit.clone())).await;
    ensure!(
        api_error(r).map(|e| e.0) == Some(409),
        "an owned field without force conflicts"
    );
    deps.patch("web", &human.clone().force(), &Patch::Apply(edit))
        .await?;
    ensure!(deps.get("web").await?.spec.and_then(|s| s.replicas) == Some(5));
    deps.patch("web", &op, &Patch::Apply(deployment("web", 2, "nginx:1")?))
        .await?;
    ensure!(deps.get("web").await?.spec.and_then(|s| s.replicas) == Some(2));

    // An update (merge patch) that changes an applied field takes it over.
    let taken = deps
        .patch(
            "web",
            &PatchParams {
                field_manager: Some("editor".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await?;
    let owners = managers_of(
        taken.metadata.managed_fields.as_ref(),
        &["f:spec", "f:replicas"],
    );
    ensure!(owners == ["editor"], "replicas owned by {owners:?}");

    // A field the manager stops sending, owned by no one else, is removed.
    let mut with_labels = deployment("lbl", 1, "i")?;
    with_labels.metadata.labels = Some(
        [
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ]
        .into(),
    );
    deps.patch("lbl", &op, &Patch::Apply(&with_labels)).await?;
    let mut fewer = with_labels.clone();
    fewer.metadata.labels = Some([("a".to_string(), "1".to_string())].into());
    let after = deps.patch("lbl", &op, &Patch::Apply(&fewer)).await?;
    ensure!(after.metadata.labels.unwrap_or_default().len() == 1);

    // Keyed lists merge by key: another manager's container survives the operator's apply.
    let sidecar = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "sidecar", "image": "envoy"}]}}}
    });
    deps.patch("web", &PatchParams::apply("mesh"), &Patch::Apply(sidecar))
        .await?;
    deps.patch("web", &op, &Patch::Apply(deployment("web", 2, "nginx:2")?))
        .await?;
    let containers = deps
        .get("web")
        .await?
        .spec
        .context("spec")?
        .template
        .spec
        .context("pod")?
        .containers;
    let mut names: Vec<_> = containers.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    ensure!(names == ["main", "sidecar"], "{names:?}");
    Ok(())
}

pub async fn finalizers_hold_deletion_until_removed(b: &Backend) -> Result<()> {
    let cms: Api<ConfigMap> = b.api();
    let mut cm = configmap("held", json!({}))?;
    cm.metadata.finalizers = Some(vec!["example.io/cleanup".into()]);
    cms.create(&PostParams::default(), &cm).await?;
    cms.delete("held", &DeleteParams::default()).await?;
    ensure!(cms.get("held").await?.metadata.deletion_timestamp.is_some());
    let add = cms
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["example.io/cleanup", "example.io/other"]}}),
            ),
        )
        .await;
    ensure!(
        api_error(add).map(|e| e.0) == Some(422),
        "no new finalizers once deleting"
    );
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    eventually("the object goes", || async {
        Ok(cms.get_opt("held").await?.is_none())
    })
    .await
}

async fn owned_pair(cms: &Api<ConfigMap>, tag: &str) -> Result<()> {
    let owner = cms
        .create(
            &PostParams::default(),
            &configmap(&format!("owner-{tag}"), json!({}))?,
        )
        .await?;
    let mut child = configmap(&format!("child-{tag}"), json!({}))?;
    child.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": format!("owner-{tag}"),
        "uid": owner.metadata.uid, "controller": true, "blockOwnerDeletion": true
    }))?]);
    cms.create(&PostParams::default(), &child).await?;
    Ok(())
}

pub async fn garbage_collection_background_foreground_orphan(b: &Backend) -> Result<()> {
    let cms: Api<ConfigMap> = b.api();
    owned_pair(&cms, "bg").await?;
    cms.delete("owner-bg", &DeleteParams::background()).await?;
    eventually("background: dependents go", || async {
        Ok(cms.get_opt("child-bg").await?.is_none())
    })
    .await?;

    owned_pair(&cms, "fg").await?;
    cms.delete("owner-fg", &DeleteParams::foreground()).await?;
    eventually("foreground: dependents, then the owner", || async {
        Ok(cms.get_opt("child-fg").await?.is_none() && cms.get_opt("owner-fg").await?.is_none())
    })
    .await?;

    owned_pair(&cms, "or").await?;
    cms.delete(
        "owner-or",
        &DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..Default::default()
        },
    )
    .await?;
    eventually(
        "orphan: the owner goes, the dependent stays without it",
        || async {
            let child = cms.get_opt("child-or").await?;
            Ok(cms.get_opt("owner-or").await?.is_none()
                && child
                    .is_some_and(|c| c.metadata.owner_references.unwrap_or_default().is_empty()))
        },
    )
    .await
}

pub async fn a_terminating_namespace_refuses_new_objects_events_included(
    b: &Backend,
) -> Result<()> {
    let nss: Api<Namespace> = Api::all(b.client.clone());
    let name = format!("{}-term", b.namespace);
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}}))?,
    )
    .await?;
    let cms: Api<ConfigMap> = Api::namespaced(b.client.clone(), &name);
    let mut held = configmap("held", json!({}))?;
    held.metadata.finalizers = Some(vec!["example.io/hold".into()]);
    cms.create(&PostParams::default(), &held).await?;
    nss.delete(&name, &DeleteParams::default()).await?;
    eventually("the namespace is terminating", || async {
        Ok(nss
            .get_opt(&name)
            .await?
            .is_some_and(|n| n.metadata.deletion_timestamp.is_some()))
    })
    .await?;

    let refused = cms
        .create(&PostParams::default(), &configmap("new", json!({}))?)
        .await;
    ensure!(
        api_error(refused).map(|e| e.0) == Some(403),
        "a new ConfigMap is refused"
    );
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": "e1"}, "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "conformance", "reportingInstance": "x", "action": "Test",
        "reason": "Test", "type": "Normal", "note": "n",
        "regarding": {"kind": "ConfigMap", "name": "held", "namespace": name, "apiVersion": "v1"},
    }))?;
    let refused = Api::<Event>::namespaced(b.client.clone(), &name)
        .create(&PostParams::default(), &event)
        .await;
    ensure!(
        api_error(refused).map(|e| e.0) == Some(403),
        "a new Event is refused too"
    );
    // Updates still go through: that is how a finalizer is released.
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"updated": "yes"}}})),
    )
    .await?;
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    eventually("the namespace goes", || async {
        Ok(nss.get_opt(&name).await?.is_none())
    })
    .await
}

pub async fn list_with_selectors_and_pages(b: &Backend) -> Result<()> {
    let cms: Api<ConfigMap> = b.api();
    for i in 0..5 {
        let mut cm = configmap(&format!("cm-{i}"), json!({}))?;
        cm.metadata.labels = Some(
            [(
                "parity".to_string(),
                if i % 2 == 0 { "even" } else { "odd" }.to_string(),
            )]
            .into(),
        );
        cms.create(&PostParams::default(), &cm).await?;
    }
    let selected = |lp: ListParams| {
        let cms = cms.clone();
        async move {
            let mut names: Vec<String> = cms
                .list(&lp)
                .await?
                .items
                .into_iter()
                .filter_map(|c| c.metadata.name)
                .filter(|n| n.starts_with("cm-"))
                .collect();
            names.sort();
            anyhow::Ok(names)
        }
    };
    ensure!(
        selected(ListParams::default().labels("parity=even")).await? == ["cm-0", "cm-2", "cm-4"]
    );
    ensure!(
        selected(ListParams::default().labels("parity!=even,parity")).await? == ["cm-1", "cm-3"]
    );
    ensure!(selected(ListParams::default().labels("parity in (odd)")).await? == ["cm-1", "cm-3"]);
    ensure!(selected(ListParams::default().fields("metadata.name=cm-1")).await? == ["cm-1"]);
    let first = cms
        .list(&ListParams::default().labels("parity").limit(2))
        .await?;
    ensure!(first.items.len() == 2);
    let token = first.metadata.continue_.context("a continue token")?;
    let rest = cms
        .list(
            &ListParams::default()
                .labels("parity")
                .limit(10)
                .continue_token(&token),
        )
        .await?;
    ensure!(rest.items.len() == 3 && rest.metadata.continue_.is_none());
    Ok(())
}

pub async fn metadata_only_list(b: &Backend) -> Result<()> {
    let cms: Api<ConfigMap> = b.api();
    cms.create(
        &PostParams::default(),
        &configmap("a", json!({"big": "data"}))?,
    )
    .await?;
    let list = cms
        .list_metadata(&ListParams::default().fields("metadata.name=a"))
        .await?;
    ensure!(list.items.len() == 1 && list.items[0].metadata.name.as_deref() == Some("a"));
    ensure!(list.items[0].metadata.uid.is_some());
    Ok(())
}

pub async fn both_event_apis_share_one_store(b: &Backend) -> Result<()> {
    let cm = b
        .api::<ConfigMap>()
        .create(&PostParams::default(), &configmap("regarded", json!({}))?)
        .await?;
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": "via-events-api"}, "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "conformance", "reportingInstance": "x", "action": "Test",
        "reason": "Tested", "type": "Warning", "note": "written through events.k8s.io/v1",
        "regarding": {"kind": "ConfigMap", "name": "regarded", "namespace": b.namespace, "apiVersion": "v1", "uid": cm.metadata.uid},
    }))?;
    b.api::<Event>()
        .create(&PostParams::default(), &event)
        .await?;
    let core = b.api::<CoreEvent>().get("via-events-api").await?;
    ensure!(
        core.message.as_deref() == Some("written through events.k8s.io/v1"),
        "{core:?}"
    );
    ensure!(core.involved_object.name.as_deref() == Some("regarded"));
    ensure!(core.reason.as_deref() == Some("Tested") && core.type_.as_deref() == Some("Warning"));
    // kubectl describe finds it by the involved object.
    let found = b
        .api::<CoreEvent>()
        .list(&ListParams::default().fields(&format!(
            "involvedObject.name=regarded,involvedObject.uid={}",
            cm.metadata.uid.unwrap_or_default()
        )))
        .await?;
    ensure!(
        found.items.len() == 1,
        "{} events for the object",
        found.items.len()
    );

    let legacy: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "via-core-api"}, "reason": "Legacy", "message": "written through v1",
        "type": "Normal", "involvedObject": {"kind": "ConfigMap", "name": "regarded", "namespace": b.namespace},
        "source": {"component": "conformance"}, "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1,
    }))?;
    b.api::<CoreEvent>()
        .create(&PostParams::default(), &legacy)
        .await?;
    let seen = b.api::<Event>().get("via-core-api").await?;
    ensure!(
        seen.note.as_deref() == Some("written through v1"),
        "{seen:?}"
    );
    ensure!(seen.regarding.and_then(|r| r.name).as_deref() == Some("regarded"));
    Ok(())
}

pub async fn dry_run_writes_nothing(b: &Backend) -> Result<()> {
    let cms: Api<ConfigMap> = b.api();
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answered = cms
        .create(&dry, &configmap("dry", json!({"k": "v"}))?)
        .await?;
    ensure!(answered.metadata.name.as_deref() == Some("dry"));
    ensure!(
        cms.get_opt("dry").await?.is_none(),
        "a dry-run create stores nothing"
    );

    cms.create(
        &PostParams::default(),
        &configmap("wet", json!({"k": "v"}))?,
    )
    .await?;
    let before = cms.get("wet").await?;
    let patched = cms
        .patch(
            "wet",
            &PatchParams {
                dry_run: true,
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"data": {"k": "changed"}})),
        )
        .await?;
    ensure!(
        patched.data.unwrap_or_default()["k"] == "changed",
        "the answer shows the change"
    );
    let applied = cms
        .patch(
            "wet",
            &PatchParams::apply("dry").force().dry_run(),
            &Patch::Apply(configmap("wet", json!({"k": "applied"}))?),
        )
        .await?;
    ensure!(applied.data.unwrap_or_default()["k"] == "applied");
    cms.delete(
        "wet",
        &DeleteParams {
            dry_run: true,
            ..DeleteParams::default()
        },
    )
    .await?;
    let after = cms.get("wet").await?;
    ensure!(
        after.metadata.resource_version == before.metadata.resource_version,
        "nothing was written"
    );
    ensure!(after.data == before.data);
    Ok(())
}

/// A streaming list (`sendInitialEvents`, what every watch of the operators asks for on a
/// server that offers it): each current object as ADDED, then a bookmark marked
/// `k8s.io/initial-events-end`, then changes as they happen — no LIST.
pub async fn a_streaming_list_sends_the_objects_then_a_bookmark(b: &Backend) -> Result<()> {
    let cms: Api<ConfigMap> = b.api();
    for name in ["s1", "s2", "s3"] {
        cms.create(&PostParams::default(), &configmap(name, json!({}))?)
            .await?;
    }
    let params = WatchParams::streaming_lists().timeout(20);
    let mut stream = cms.watch(&params, "").await?.boxed();
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await?? {
            Some(WatchEvent::Added(cm)) => initial.extend(cm.metadata.name),
            Some(WatchEvent::Bookmark(mark)) => {
                let end = mark.metadata.annotations.get("k8s.io/initial-events-end");
                if end.map(String::as_str) == Some("true") {
                    break;
                }
            }
            other => bail!("unexpected before the end of the initial events: {other:?}"),
        }
    }
    initial.sort();
    ensure!(
        initial.iter().filter(|n| n.starts_with('s')).count() == 3,
        "{initial:?}"
    );
    cms.create(&PostParams::default(), &configmap("s4", json!({}))?)
        .await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await?? {
            Some(WatchEvent::Added(cm)) if cm.metadata.name.as_deref() == Some("s4") => {
                return Ok(());
            }
            Some(WatchEvent::Bookmark(_) | WatchEvent::Added(_)) => {}
            other => bail!("unexpected after the initial events: {other:?}"),
        }
    }
}

pub async fn watch_delivers_changes_from_a_resource_version(b: &Backend) -> Result<()> {
    let cms: Api<ConfigMap> = b.api();
    let start = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("rv")?;
    cms.create(&PostParams::default(), &configmap("w", json!({}))?)
        .await?;
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await?;
    cms.delete("w", &DeleteParams::default()).await?;
    let mut stream = cms
        .watch(
            &WatchParams::default().fields("metadata.name=w").timeout(10),
            &start,
        )
        .await?
        .boxed();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await?? {
            Some(WatchEvent::Added(_)) => kinds.push("ADDED"),
            Some(WatchEvent::Modified(_)) => kinds.push("MODIFIED"),
            Some(WatchEvent::Deleted(_)) => kinds.push("DELETED"),
            Some(WatchEvent::Bookmark(_)) => {}
            other => bail!("unexpected {other:?}"),
        }
    }
    ensure!(kinds == ["ADDED", "MODIFIED", "DELETED"], "{kinds:?}");
    Ok(())
}

pub async fn tables_for_kubectl_get_and_get_watch(b: &Backend) -> Result<()> {
    let (crds, crd_name, gadgets) = install_gadgets(
        b,
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    )
    .await?;
    let group = format!("{}.example.io", b.namespace);
    let g: DynamicObject = serde_json::from_value(
        json!({"apiVersion": format!("{group}/v1"), "kind": "Gadget", "metadata": {"name": "t"}, "spec": {"size": 3}}),
    )?;
    gadgets.create(&PostParams::default(), &g).await?;
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let path = format!("/apis/{group}/v1/namespaces/{}/gadgets", b.namespace);
    let request = http::Request::get(&path)
        .header(http::header::ACCEPT, accept)
        .body(Vec::new())?;
    let table: Value = serde_json::from_str(&b.client.request_text(request).await?)?;
    ensure!(table["kind"] == "Table", "{table}");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    ensure!(
        columns.contains(&"Name") && columns.contains(&"Size"),
        "{columns:?}"
    );
    let row = &table["rows"][0]["cells"];
    ensure!(
        row[0] == "t" && row.as_array().is_some_and(|r| r.contains(&json!(3))),
        "{row}"
    );

    // `kubectl get -w`: the watch sends rows with the same columns.
    let rv = table["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let stream_request = http::Request::get(format!(
        "{path}?watch=true&resourceVersion={rv}&timeoutSeconds=5"
    ))
    .header(http::header::ACCEPT, accept)
    .body(Vec::new())?;
    let mut events = b
        .client
        .request_events::<Value>(stream_request)
        .await?
        .boxed();
    gadgets
        .patch(
            "t",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 4}})),
        )
        .await?;
    let event = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.try_next()).await?? {
            Some(WatchEvent::Modified(obj)) => break obj,
            Some(WatchEvent::Bookmark(_) | WatchEvent::Added(_)) => {}
            other => bail!("unexpected {other:?}"),
        }
    };
    ensure!(
        event["kind"] == "Table",
        "a watch for tables sends tables: {event}"
    );
    ensure!(
        event["rows"][0]["cells"]
            .as_array()
            .is_some_and(|r| r.contains(&json!(4))),
        "{event}"
    );
    crds.delete(&crd_name, &DeleteParams::default()).await?;
    Ok(())
}

pub async fn deletion_preconditions_and_collections(b: &Backend) -> Result<()> {
    let cms: Api<ConfigMap> = b.api();
    cms.create(&PostParams::default(), &configmap("p", json!({}))?)
        .await?;
    let wrong = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("00000000-0000-0000-0000-000000000000".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    ensure!(
        api_error(cms.delete("p", &wrong).await).map(|e| e.0) == Some(409),
        "a UID precondition that fails is a conflict"
    );
    for i in 0..3 {
        let mut cm = configmap(&format!("batch-{i}"), json!({}))?;
        cm.metadata.labels = Some([("batch".to_string(), "yes".to_string())].into());
        cms.create(&PostParams::default(), &cm).await?;
    }
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("batch=yes"),
    )
    .await?;
    eventually("the collection goes", || async {
        Ok(cms
            .list(&ListParams::default().labels("batch=yes"))
            .await?
            .items
            .is_empty())
    })
    .await?;
    ensure!(
        cms.get_opt("p").await?.is_some(),
        "what the selector did not name stays"
    );
    Ok(())
}

/// A Secret's `stringData` is written into `data` (base64, over a key of the same name) and
/// never stored itself.
pub async fn secret_string_data_is_stored_as_data(b: &Backend) -> Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "string-data"},
        "data": {"kept": "eA==", "replaced": "eA=="},
        "stringData": {"replaced": "new", "added": "placeholder"},
    }))?;
    let created = b
        .api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await?;
    ensure!(created.string_data.is_none(), "stringData is not stored");
    let data = created.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
    };
    ensure!(text("kept").as_deref() == Some("x"), "{data:?}");
    ensure!(text("replaced").as_deref() == Some("new"), "{data:?}");
    ensure!(text("added").as_deref() == Some("placeholder"), "{data:?}");
    Ok(())
}

/// A patch or apply that carries `metadata.uid` applies only to the object with that UID:
/// one recreated under the same name refuses it (422, the UID is immutable), so an operator
/// that read an object and then scales, claims or releases it never writes to a replacement
/// that is someone else's.
pub async fn a_patch_naming_a_uid_applies_only_to_that_object(b: &Backend) -> Result<()> {
    let deployments: Api<Deployment> = b.api();
    let first = deployments
        .create(
            &PostParams::default(),
            &deployment("uid-bound", 3, "busybox")?,
        )
        .await?;
    let uid = first
        .metadata
        .uid
        .clone()
        .context("a created object has a UID")?;
    let scale = |uid: &str, replicas: i32| json!({"metadata": {"uid": uid}, "spec": {"replicas": replicas}});
    deployments
        .patch(
            "uid-bound",
            &PatchParams::default(),
            &Patch::Merge(&scale(&uid, 2)),
        )
        .await?;
    deployments
        .delete("uid-bound", &DeleteParams::default())
        .await?;
    eventually("the first one goes", || async {
        Ok(deployments.get_opt("uid-bound").await?.is_none())
    })
    .await?;
    let second = deployments
        .create(
            &PostParams::default(),
            &deployment("uid-bound", 7, "busybox")?,
        )
        .await?;
    let refused = deployments
        .patch(
            "uid-bound",
            &PatchParams::default(),
            &Patch::Merge(&scale(&uid, 0)),
        )
        .await;
    ensure!(
        api_error(refused).map(|e| e.0) == Some(422),
        "a patch naming the old UID is refused"
    );
    // So is a server-side apply, even of a field no manager of the replacement holds.
    let claim = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "uid-bound", "uid": uid, "labels": {"claimed": "yes"}},
    });
    let claimed = deployments
        .patch(
            "uid-bound",
            &PatchParams::apply("handover"),
            &Patch::Apply(&claim),
        )
        .await;
    let status = api_error(claimed);
    ensure!(
        status.as_ref().map(|e| e.0) == Some(422),
        "an apply naming the old UID is refused with 422, got {status:?}"
    );
    let now = deployments.get("uid-bound").await?;
    ensure!(
        now.spec.and_then(|s| s.replicas) == Some(7)
            && now.metadata.uid == second.metadata.uid
            && !now
                .metadata
                .labels
                .unwrap_or_default()
                .contains_key("claimed"),
        "the replacement is untouched"
    );
    Ok(())
}

/// Every object's labels are checked (a value of at most 63 characters, keys as qualified
/// names), and a ConfigMap's data is at most 1 MiB: refused with 422, nothing stored.
pub async fn label_values_and_data_size_are_bounded(b: &Backend) -> Result<()> {
    let cms: Api<ConfigMap> = b.api();
    let mut labelled = configmap("labelled", json!({}))?;
    labelled.metadata.labels = Some([("team".to_string(), "a".repeat(64))].into());
    let refused = cms.create(&PostParams::default(), &labelled).await;
    ensure!(
        api_error(refused).map(|e| e.0) == Some(422),
        "a 64-character label value is invalid"
    );
    labelled.metadata.labels = Some([("team".to_string(), "a".repeat(63))].into());
    cms.create(&PostParams::default(), &labelled).await?;
    let bad_key = json!({"metadata": {"labels": {"Not_A_Prefix/x": "y"}}});
    let refused = cms
        .patch("labelled", &PatchParams::default(), &Patch::Merge(&bad_key))
        .await;
    ensure!(
        api_error(refused).map(|e| e.0) == Some(422),
        "a label key with an invalid prefix is invalid"
    );
    let big = configmap("big", json!({"blob": "x".repeat(1024 * 1024 + 1)}))?;
    let refused = cms.create(&PostParams::default(), &big).await;
    ensure!(
        api_error(refused).map(|e| e.0) == Some(422),
        "a ConfigMap over 1 MiB is invalid"
    );
    ensure!(cms.get_opt("big").await?.is_none(), "nothing was stored");
    Ok(())
}

/// A pod template's container resources: a quantity that does not read is a 400 (the body
/// cannot be decoded), a limit below its request or a negative quantity a 422; nothing stored.
pub async fn container_resources_are_read_and_limits_hold(b: &Backend) -> Result<()> {
    let deployments: Api<Deployment> = b.api();
    let with_resources = |name: &str, resources: Value| -> Result<Deployment> {
        let mut d = serde_json::to_value(deployment(name, 1, "busybox")?)?;
        d["spec"]["template"]["spec"]["containers"][0]["resources"] = resources;
        Ok(serde_json::from_value(d)?)
    };
    let below = with_resources(
        "limit-below-request",
        json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
    )?;
    let refused = deployments.create(&PostParams::default(), &below).await;
    ensure!(
        api_error(refused).map(|e| e.0) == Some(422),
        "a limit below its request is invalid"
    );
    let negative = with_resources("negative", json!({"requests": {"cpu": "-1"}}))?;
    let refused = deployments.create(&PostParams::default(), &negative).await;
    ensure!(
        api_error(refused).map(|e| e.0) == Some(422),
        "a negative request is invalid"
    );
    let unreadable = with_resources("unreadable", json!({"requests": {"memory": "lots"}}))?;
    let refused = deployments
        .create(&PostParams::default(), &unreadable)
        .await;
    ensure!(
        api_error(refused).map(|e| e.0) == Some(400),
        "a quantity that does not read cannot be decoded"
    );
    let fine = with_resources(
        "fine",
        json!({"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "0.5Gi"}}),
    )?;
    deployments.create(&PostParams::default(), &fine).await?;
    for name in ["limit-below-request", "negative", "unreadable"] {
        ensure!(
            deployments.get_opt(name).await?.is_none(),
            "{name} was stored"
        );
    }
    Ok(())
}
