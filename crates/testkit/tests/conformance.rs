//! Conformance: each behaviour operators rely on, exercised through a real `kube::Client`.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use testkit::{ApiServer, Fault, FaultRule, Faults, Verb};

fn configmap(name: &str, data: serde_json::Value) -> Result<ConfigMap> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": data
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

#[tokio::test]
async fn create_get_update_with_conflicts() -> Result<()> {
    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = cms
        .create(&PostParams::default(), &configmap("a", json!({"k": "v"}))?)
        .await?;
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());

    let again = cms
        .create(&PostParams::default(), &configmap("a", json!({}))?)
        .await;
    assert_eq!(api_error(again), Some((409, "AlreadyExists".into())));

    let mut fresh = cms.get("a").await?;
    fresh.data = Some([("k".to_string(), "w".to_string())].into());
    let updated = cms.replace("a", &PostParams::default(), &fresh).await?;
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );

    // Writing with the stale resourceVersion is a conflict.
    let stale = cms.replace("a", &PostParams::default(), &fresh).await;
    assert_eq!(api_error(stale), Some((409, "Conflict".into())));

    let missing = cms.get("nope").await;
    assert_eq!(api_error(missing), Some((404, "NotFound".into())));

    // generateName
    let mut generated = configmap("", json!({}))?;
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let g = cms.create(&PostParams::default(), &generated).await?;
    assert!(
        g.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("gen-") && n.len() > 4)
    );

    // Creating in a namespace that does not exist is NotFound, as on a real cluster.
    let elsewhere: Api<ConfigMap> = Api::namespaced(server.client(), "absent");
    let r = elsewhere
        .create(&PostParams::default(), &configmap("a", json!({}))?)
        .await;
    assert_eq!(api_error(r), Some((404, "NotFound".into())));
    Ok(())
}

#[tokio::test]
async fn generation_moves_on_spec_changes_only() -> Result<()> {
    let server = ApiServer::new();
    let deps: Api<Deployment> = Api::default_namespaced(server.client());
    let d = deps
        .create(&PostParams::default(), &deployment("web", 1, "nginx:1")?)
        .await?;
    assert_eq!(d.metadata.generation, Some(1));

    let labelled = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await?;
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep generation"
    );

    let status = deps
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 1}})),
        )
        .await?;
    assert_eq!(
        status.metadata.generation,
        Some(1),
        "status changes keep generation"
    );

    let scaled = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await?;
    assert_eq!(scaled.metadata.generation, Some(2));
    Ok(())
}

#[tokio::test]
async fn status_subresource_separates_spec_and_status() -> Result<()> {
    let server = ApiServer::new();
    let deps: Api<Deployment> = Api::default_namespaced(server.client());
    deps.create(&PostParams::default(), &deployment("web", 1, "nginx:1")?)
        .await?;

    // A write to the main resource ignores status.
    let main = deps
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 9}})),
        )
        .await?;
    assert_eq!(main.status.and_then(|s| s.replicas), None);

    // A write to /status ignores everything but status.
    let st = deps
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 7}, "status": {"replicas": 1}})),
        )
        .await?;
    assert_eq!(st.spec.and_then(|s| s.replicas), Some(1));
    assert_eq!(st.status.and_then(|s| s.replicas), Some(1));
    Ok(())
}

#[tokio::test]
async fn json_patch_with_test_and_merge_patch_removal() -> Result<()> {
    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
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
    assert_eq!(removed.data.unwrap_or_default().len(), 1);

    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]}
    ]))?;
    let with = cms
        .patch("a", &PatchParams::default(), &Patch::Json::<()>(patch))
        .await?;
    assert_eq!(with.metadata.finalizers, Some(vec!["x/y".to_string()]));

    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/k", "value": "other"},
        {"op": "replace", "path": "/data/k", "value": "new"}
    ]))?;
    let r = cms
        .patch("a", &PatchParams::default(), &Patch::Json::<()>(failing))
        .await;
    assert_eq!(api_error(r).map(|e| e.0), Some(422));
    assert_eq!(cms.get("a").await?.data.unwrap_or_default()["k"], "v");
    Ok(())
}

#[tokio::test]
async fn server_side_apply_tracks_owners() -> Result<()> {
    let server = ApiServer::new();
    let deps: Api<Deployment> = Api::default_namespaced(server.client());
    let op = PatchParams::apply("operator").force();
    let d = deps
        .patch("web", &op, &Patch::Apply(deployment("web", 2, "nginx:1")?))
        .await?;
    let rv = d.metadata.resource_version.clone();
    let managers: Vec<_> = d
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, vec!["operator".to_string()]);

    // The same apply again changes nothing: same resourceVersion, no watch event.
    let again = deps
        .patch("web", &op, &Patch::Apply(deployment("web", 2, "nginx:1")?))
        .await?;
    assert_eq!(again.metadata.resource_version, rv);

    // Another manager changing an owned field without force is a conflict.
    let human = PatchParams::apply("human");
    let mut edit = deployment("web", 5, "nginx:1")?;
    edit.metadata.labels = None;
    let r = deps.patch("web", &human, &Patch::Apply(edit.clone())).await;
    let (code, _) = api_error(r).context("an API error")?;
    assert_eq!(code, 409);

    // With force it takes the field; the operator's next apply takes it back.
    deps.patch("web", &human.clone().force(), &Patch::Apply(edit))
        .await?;
    assert_eq!(
        deps.get("web").await?.spec.and_then(|s| s.replicas),
        Some(5)
    );
    deps.patch("web", &op, &Patch::Apply(deployment("web", 2, "nginx:1")?))
        .await?;
    assert_eq!(
        deps.get("web").await?.spec.and_then(|s| s.replicas),
        Some(2)
    );

    // A field the manager stops sending, and owned by no one else, is removed.
    let labels_only: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "cm-labels", "labels": {"a": "1", "b": "2"}},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))?;
    deps.patch("cm-labels", &op, &Patch::Apply(&labels_only))
        .await?;
    let mut fewer = labels_only.clone();
    fewer.metadata.labels = Some([("a".to_string(), "1".to_string())].into());
    let after = deps.patch("cm-labels", &op, &Patch::Apply(&fewer)).await?;
    assert_eq!(after.metadata.labels.unwrap_or_default().len(), 1);

    // Keyed lists merge by key: another manager's container survives the operator's apply.
    let sidecar = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "envoy"}]}}}
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
        .context("pod spec")?
        .containers;
    let names: Vec<_> = containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["main", "sidecar"]);
    assert_eq!(containers[0].image.as_deref(), Some("nginx:2"));
    Ok(())
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() -> Result<()> {
    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut cm = configmap("held", json!({}))?;
    cm.metadata.finalizers = Some(vec!["example.io/cleanup".into()]);
    cms.create(&PostParams::default(), &cm).await?;

    cms.delete("held", &DeleteParams::default()).await?;
    let terminating = cms.get("held").await?;
    assert!(terminating.metadata.deletion_timestamp.is_some());

    // No new finalizers once deleting.
    let add = cms
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.io/cleanup", "other"]}})),
        )
        .await;
    assert_eq!(api_error(add).map(|e| e.0), Some(422));

    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert_eq!(api_error(cms.get("held").await).map(|e| e.0), Some(404));
    Ok(())
}

async fn owned_pair(server: &ApiServer) -> Result<(Api<ConfigMap>, String)> {
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let owner = cms
        .create(&PostParams::default(), &configmap("owner", json!({}))?)
        .await?;
    let uid = owner.metadata.uid.context("uid")?;
    let mut child = configmap("child", json!({}))?;
    child.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid,
        "controller": true, "blockOwnerDeletion": true
    }))?]);
    cms.create(&PostParams::default(), &child).await?;
    Ok((cms, uid))
}

#[tokio::test]
async fn garbage_collection_background_foreground_orphan() -> Result<()> {
    let server = ApiServer::new();
    let (cms, _) = owned_pair(&server).await?;
    cms.delete("owner", &DeleteParams::background()).await?;
    assert!(
        cms.get_opt("child").await?.is_none(),
        "background deletion removes dependents"
    );

    let server = ApiServer::new();
    let (cms, _) = owned_pair(&server).await?;
    cms.delete("owner", &DeleteParams::foreground()).await?;
    assert!(cms.get_opt("child").await?.is_none());
    assert!(
        cms.get_opt("owner").await?.is_none(),
        "foreground deletion completes"
    );

    let server = ApiServer::new();
    let (cms, _) = owned_pair(&server).await?;
    cms.delete(
        "owner",
        &DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..Default::default()
        },
    )
    .await?;
    let child = cms.get("child").await?;
    assert!(
        child
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    assert!(cms.get_opt("owner").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_objects() -> Result<()> {
    let server = ApiServer::new();
    let nss: Api<Namespace> = Api::all(server.client());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team"}}))?,
    )
    .await?;
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "team");
    cms.create(&PostParams::default(), &configmap("a", json!({}))?)
        .await?;
    nss.delete("team", &DeleteParams::default()).await?;
    assert!(nss.get_opt("team").await?.is_none());
    assert!(
        server
            .objects("v1", "configmaps")
            .iter()
            .all(|o| o["metadata"]["namespace"] != "team")
    );
    Ok(())
}

#[tokio::test]
async fn list_with_selectors_and_pages() -> Result<()> {
    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
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
    let even = cms
        .list(&ListParams::default().labels("parity=even"))
        .await?;
    assert_eq!(even.items.len(), 3);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=cm-1"))
        .await?;
    assert_eq!(by_name.items.len(), 1);

    let first = cms.list(&ListParams::default().limit(2)).await?;
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.context("continue token")?;
    let rest = cms
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await?;
    assert_eq!(rest.items.len(), 3);
    assert!(rest.metadata.continue_.is_none());
    Ok(())
}

#[tokio::test]
async fn watch_resumes_and_expires() -> Result<()> {
    let server = ApiServer::with_history(3);
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let start = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("rv")?;
    cms.create(&PostParams::default(), &configmap("a", json!({}))?)
        .await?;
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await?;

    let mut stream = cms.watch(&WatchParams::default(), &start).await?.boxed();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        match stream.try_next().await? {
            Some(WatchEvent::Added(_)) => kinds.push("ADDED"),
            Some(WatchEvent::Modified(_)) => kinds.push("MODIFIED"),
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, vec!["ADDED", "MODIFIED"]);

    // Push the start out of the kept history: resuming from it is 410 Gone.
    for i in 0..5 {
        cms.create(
            &PostParams::default(),
            &configmap(&format!("b{i}"), json!({}))?,
        )
        .await?;
    }
    let mut expired = cms.watch(&WatchParams::default(), &start).await?.boxed();
    match expired.try_next().await? {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => anyhow::bail!("expected 410, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn kube_watcher_survives_disconnects() -> Result<()> {
    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut objects = watcher(cms.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    cms.create(&PostParams::default(), &configmap("one", json!({}))?)
        .await?;
    let first = tokio::time::timeout(Duration::from_secs(10), objects.try_next()).await??;
    assert_eq!(first.and_then(|o| o.metadata.name).as_deref(), Some("one"));

    server.disconnect_watches();
    cms.create(&PostParams::default(), &configmap("two", json!({}))?)
        .await?;
    let next = loop {
        let o = tokio::time::timeout(Duration::from_secs(10), objects.try_next())
            .await??
            .context("stream ended")?;
        if o.metadata.name.as_deref() == Some("two") {
            break o;
        }
    };
    assert_eq!(next.metadata.name.as_deref(), Some("two"));
    Ok(())
}

#[tokio::test]
async fn metadata_only_list_and_watch() -> Result<()> {
    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(
        &PostParams::default(),
        &configmap("a", json!({"secret-ish": "data"}))?,
    )
    .await?;
    let list = cms.list_metadata(&ListParams::default()).await?;
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("a"));
    Ok(())
}

#[tokio::test]
async fn crds_make_kinds_servable() -> Result<()> {
    let server = ApiServer::new();
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.io"},
        "spec": {
            "group": "example.io", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))?;
    let created = crds.create(&PostParams::default(), &crd).await?;
    let established = created
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default();
    assert!(
        established
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let gvk = GroupVersionKind::gvk("example.io", "v1", "Widget");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::default_namespaced_with(server.client(), &ar);
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"size": 1}, "status": {"ignored": true}
    }))?;
    let created = widgets.create(&PostParams::default(), &w).await?;
    assert_eq!(created.data["spec"]["size"], 1);
    assert!(
        created.data.get("status").is_none(),
        "status is a subresource"
    );
    Ok(())
}

#[tokio::test]
async fn injected_faults_are_seeded_and_counted() -> Result<()> {
    let run = |seed| async move {
        let server = ApiServer::new();
        server.set_faults(Faults {
            seed,
            rules: vec![FaultRule {
                verbs: vec![Verb::Get],
                resources: vec![],
                rate: 0.5,
                fault: Fault::ServerError,
            }],
            ..Faults::default()
        });
        let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
        cms.create(&PostParams::default(), &configmap("a", json!({}))?)
            .await?;
        let mut outcomes = Vec::new();
        for _ in 0..20 {
            outcomes.push(cms.get("a").await.is_ok());
        }
        let stats = server.stats();
        anyhow::Ok((outcomes, stats))
    };
    let (a, stats) = run(7).await?;
    let (b, _) = run(7).await?;
    assert_eq!(a, b, "same seed, same faults");
    let failures = a.iter().filter(|ok| !**ok).count();
    assert!(failures > 0 && failures < 20);
    assert_eq!(stats.count(Verb::Get, "configmaps"), 20);
    assert_eq!(
        stats.by[&(Verb::Get, "configmaps".to_string())].faulted,
        failures as u64
    );

    let server = ApiServer::new();
    server.set_faults(Faults {
        rules: vec![FaultRule {
            verbs: vec![],
            resources: vec!["configmaps".into()],
            rate: 1.0,
            fault: Fault::TooManyRequests {
                retry_after_secs: 2,
            },
        }],
        ..Faults::default()
    });
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let r = cms.get("x").await;
    assert_eq!(api_error(r), Some((429, "TooManyRequests".into())));
    Ok(())
}

#[tokio::test]
async fn accounting_separates_changing_writes() -> Result<()> {
    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let pp = PatchParams::apply("op").force();
    let cm = configmap("a", json!({"k": "v"}))?;
    cms.patch("a", &pp, &Patch::Apply(&cm)).await?;
    cms.patch("a", &pp, &Patch::Apply(&cm)).await?;
    let stats = server.stats();
    assert_eq!(stats.count(Verb::Apply, "configmaps"), 2);
    assert_eq!(
        stats.changing_writes(),
        1,
        "the second apply changed nothing"
    );
    Ok(())
}

fn gadget_crd(schema: serde_json::Value) -> Result<CustomResourceDefinition> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.io"},
        "spec": {
            "group": "example.io", "scope": "Namespaced",
            "names": {"kind": "Gadget", "plural": "gadgets"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": schema}}]
        }
    }))?)
}

#[tokio::test]
async fn crd_schemas_validate_prune_and_default() -> Result<()> {
    let server = ApiServer::new();
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());

    // A schema that is not structural is refused, naming the field.
    let refused = crds
        .create(
            &PostParams::default(),
            &gadget_crd(json!({"type": "object", "properties": {"spec": {"properties": {}}}}))?,
        )
        .await;
    match refused {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("properties[spec].type"), "{}", s.message);
        }
        other => anyhow::bail!("expected 422, got {other:?}"),
    }

    crds.create(&PostParams::default(), &gadget_crd(json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object", "required": ["min", "max"],
            "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min must not exceed max"}],
            "properties": {
                "min": {"type": "integer", "minimum": 1},
                "max": {"type": "integer", "maximum": 100},
                "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"}
            }
        }}
    }))?).await?;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.io", "v1", "Gadget"),
        "gadgets",
    );
    let gadgets: Api<DynamicObject> = Api::default_namespaced_with(server.client(), &ar);
    let gadget = |spec: serde_json::Value| -> Result<DynamicObject> {
        Ok(serde_json::from_value(
            json!({"apiVersion": "example.io/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": spec}),
        )?)
    };

    let created = gadgets
        .create(
            &PostParams::default(),
            &gadget(json!({"min": 1, "max": 5, "colour": "red"}))?,
        )
        .await?;
    assert_eq!(created.data["spec"]["mode"], "safe", "defaulted");
    assert!(
        created.data["spec"].get("colour").is_none(),
        "unknown field pruned"
    );

    for (spec, field, says) in [
        (
            json!({"min": 0, "max": 5}),
            "spec.min",
            "greater than or equal to 1",
        ),
        (
            json!({"min": 1, "max": 5, "mode": "reckless"}),
            "spec.mode",
            "supported values",
        ),
        (
            json!({"min": 9, "max": 5}),
            "spec",
            "min must not exceed max",
        ),
        (json!({"min": 1}), "spec.max", "Required value"),
    ] {
        let mut bad = gadget(spec)?;
        bad.metadata.name = Some("bad".into());
        match gadgets.create(&PostParams::default(), &bad).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 422);
                assert!(
                    s.message.contains(field) && s.message.contains(says),
                    "{}",
                    s.message
                );
            }
            other => anyhow::bail!("expected 422 for {field}, got {other:?}"),
        }
    }

    // Updates are validated too: nothing is half-applied.
    let r = gadgets
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"max": 500}})),
        )
        .await;
    assert!(matches!(r, Err(kube::Error::Api(ref s)) if s.code == 422));
    assert_eq!(gadgets.get("g").await?.data["spec"]["max"], 5);
    Ok(())
}

#[tokio::test]
async fn kube_controller_reconciles_every_object() -> Result<()> {
    use kube::runtime::Controller;
    use kube::runtime::controller::Action;
    use std::sync::Arc;

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    struct Never;

    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    for i in 0..20 {
        cms.create(
            &PostParams::default(),
            &configmap(&format!("c{i}"), json!({}))?,
        )
        .await?;
    }
    let seen: Vec<String> = Controller::new(cms.clone(), watcher::Config::default())
        .run(
            |_: Arc<ConfigMap>, _: Arc<()>| async { Ok::<_, Never>(Action::await_change()) },
            |_, _, _| Action::await_change(),
            Arc::new(()),
        )
        .filter_map(|r| async move { r.ok().map(|(obj, _)| obj.name) })
        .take(20)
        .collect()
        .await;
    let mut seen = seen;
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 20);
    Ok(())
}

#[tokio::test]
async fn delete_collection_by_label() -> Result<()> {
    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    for (name, team) in [("a", "pay"), ("b", "pay"), ("c", "risk")] {
        let mut cm = configmap(name, json!({}))?;
        cm.metadata.labels = Some([("team".to_string(), team.to_string())].into());
        cms.create(&PostParams::default(), &cm).await?;
    }
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("team=pay"),
    )
    .await?;
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, vec!["c".to_string()]);
    Ok(())
}

#[tokio::test]
async fn streaming_list_watch_sends_initial_events_then_a_bookmark() -> Result<()> {
    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    for name in ["a", "b"] {
        cms.create(&PostParams::default(), &configmap(name, json!({}))?)
            .await?;
    }
    let mut events = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.try_next()).await?? {
            Some(watcher::Event::InitApply(cm)) => initial.extend(cm.metadata.name),
            Some(watcher::Event::InitDone) => break,
            Some(_) => {}
            None => anyhow::bail!("stream ended"),
        }
    }
    initial.sort();
    assert_eq!(initial, vec!["a", "b"]);
    assert!(
        server.stats().count(Verb::List, "configmaps") == 0,
        "no LIST: the watch streamed the state"
    );
    Ok(())
}

#[tokio::test]
async fn no_op_apply_emits_no_change_at_all() -> Result<()> {
    let server = ApiServer::new();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let pp = PatchParams::apply("op").force();
    cms.patch("a", &pp, &Patch::Apply(configmap("a", json!({"k": "v"}))?))
        .await?;
    let before = server.resource_version();
    cms.patch("a", &pp, &Patch::Apply(configmap("a", json!({"k": "v"}))?))
        .await?;
    // Every change moves the store's resourceVersion (and is a watch event); none happened.
    assert_eq!(server.resource_version(), before);
    Ok(())
}

#[tokio::test]
async fn injected_latency_and_conflicts() -> Result<()> {
    let server = ApiServer::new();
    server.set_faults(Faults {
        latency: Duration::from_millis(30),
        rules: vec![FaultRule {
            verbs: vec![Verb::Update],
            resources: vec![],
            rate: 1.0,
            fault: Fault::Conflict,
        }],
        ..Faults::default()
    });
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let start = std::time::Instant::now();
    let cm = cms
        .create(&PostParams::default(), &configmap("a", json!({}))?)
        .await?;
    assert!(
        start.elapsed() >= Duration::from_millis(30),
        "latency is added before serving"
    );
    let r = cms.replace("a", &PostParams::default(), &cm).await;
    assert_eq!(api_error(r), Some((409, "Conflict".into())));
    Ok(())
}

#[tokio::test]
async fn manifests_load_crds_and_namespaces_first() -> Result<()> {
    let server = ApiServer::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    server.load_manifests(&root.join("deploy/crds"))?;
    server.load_manifests(&root.join("deploy/namespaces"))?;
    let files = server.load_manifests(&root.join("deploy/samples"))?;
    assert!(
        files
            .iter()
            .all(|f| f.file_name().is_some_and(|n| n != "kustomization.yaml"))
    );
    let names: Vec<String> = server
        .objects("fintech.io/v1", "tradingalgorithms")
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(String::from))
        .collect();
    assert_eq!(
        names,
        vec![
            "arbitrage-trader-prod",
            "momentum-trader-prod",
            "sample-momentum-algo"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn garbage_collection_cannot_hang_on_a_rewrite_the_schema_refuses() -> Result<()> {
    let server = ApiServer::new();
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let permissive = json!({"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}});
    crds.create(&PostParams::default(), &gadget_crd(permissive)?)
        .await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let a = cms
        .create(&PostParams::default(), &configmap("owner-a", json!({}))?)
        .await?;
    let b = cms
        .create(&PostParams::default(), &configmap("owner-b", json!({}))?)
        .await?;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.io", "v1", "Gadget"),
        "gadgets",
    );
    let gadgets: Api<DynamicObject> = Api::default_namespaced_with(server.client(), &ar);
    let owner = |o: &ConfigMap| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o.metadata.name, "uid": o.metadata.uid});
    let child: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.io/v1", "kind": "Gadget",
        "metadata": {"name": "g", "ownerReferences": [owner(&a), owner(&b)]},
        "spec": {"size": 1}
    }))?;
    gadgets.create(&PostParams::default(), &child).await?;
    // The schema tightens: the stored child no longer validates, so GC cannot rewrite it.
    let mut crd = crds.get("gadgets.example.io").await?;
    crd.spec.versions[0].schema = Some(serde_json::from_value(json!({"openAPIV3Schema": {
        "type": "object",
        "properties": {"spec": {"type": "object", "required": ["colour"], "properties": {"colour": {"type": "string"}, "size": {"type": "integer"}}}}
    }}))?);
    crds.replace("gadgets.example.io", &PostParams::default(), &crd)
        .await?;
    tokio::time::timeout(
        Duration::from_secs(10),
        cms.delete("owner-a", &DeleteParams::default()),
    )
    .await??;
    assert!(cms.get_opt("owner-a").await?.is_none());
    Ok(())
}
