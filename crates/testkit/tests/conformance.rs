//! Conformance: each behaviour operators rely on, exercised through a real `kube::Client`.
//! The shared cases (`testkit::conformance`) run here against testkit and in the e2e suite
//! against a real kube-apiserver; the tests below them cover what only testkit has (faults,
//! accounting, watch history, manifest loading).

use testkit::conformance::{self, Backend};

/// A fresh server with the case's namespace.
async fn testkit_backend() -> Result<Backend> {
    let server = ApiServer::new();
    let namespace = "conformance".to_string();
    Api::<Namespace>::all(server.client())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}}))?,
        )
        .await?;
    Ok(Backend {
        client: server.client(),
        namespace,
    })
}

macro_rules! on_testkit {
    ($case:ident) => {
        #[tokio::test]
        async fn $case() -> Result<()> {
            conformance::$case(&testkit_backend().await?).await
        }
    };
}

testkit::conformance_cases!(on_testkit);

use std::time::Duration;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
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

/// The code and reason of a failed request; `None` if it succeeded or failed otherwise.
fn api_error<T>(r: Result<T, kube::Error>) -> Option<(u16, String)> {
    match r {
        Err(kube::Error::Api(s)) => Some((s.code, s.reason)),
        _ => None,
    }
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
