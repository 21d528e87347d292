//! An operator writes only what it created or was explicitly handed, and a converged child
//! costs no request even when something else keeps rewriting it (an HPA's status).

use crate::common::*;

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use operator_core::apply::ADOPT_ANNOTATION;
use operator_core::autoscaling::{hand_replicas_to_autoscaler, held_replicas};
use operator_core::{Applied, Children, Error, Foreign};
use serde_json::{Value, json};
use testkit::ApiServer;

fn stored(server: &ApiServer, name: &str) -> Result<Value> {
    server
        .object("v1", "configmaps", "default", name)
        .context("the ConfigMap is still there")
}

async fn create_configmap(server: &ApiServer, body: Value) -> Result<ConfigMap> {
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    Ok(cms
        .create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?)
}

#[tokio::test]
async fn an_object_the_operator_did_not_create_is_a_conflict_and_left_untouched() -> Result<()> {
    let server = server_with_crd().await?;
    let owner = create_widget(&server, "w", 3).await?;
    create_configmap(
        &server,
        json!({"metadata": {"name": "w-config"}, "data": {"owner": "another team"}}),
    )
    .await?;
    let before = stored(&server, "w-config")?;
    let children = Children::<ConfigMap>::uncached(server.client(), IDENTITY);

    let refused = children
        .apply(&owner, desired_configmap(&owner, "config"))
        .await;
    let Err(error @ Error::ChildNameConflict { .. }) = refused else {
        bail!("expected a name conflict, got {refused:?}");
    };
    assert_eq!(error.reason(), "ChildNameConflict");
    let message = error.to_string();
    assert!(
        message.contains("ConfigMap w-config already exists and was not created by this operator"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{ADOPT_ANNOTATION}=Widget/w")),
        "the message says how to hand it over: {message}"
    );
    assert_eq!(
        stored(&server, "w-config")?,
        before,
        "not a byte of it written"
    );

    // In a pass the refusal is noted, the pass goes on, and nothing is pruned.
    let (kinds, _) = widget_children(server.client(), None);
    let mut pass = kinds.pass(&owner);
    pass.apply(desired_configmap(&owner, "config")).await?;
    pass.apply(desired_configmap(&owner, "other")).await?;
    let changes = pass.finish().await?;
    assert_eq!(changes.created, vec!["ConfigMap/w-other".to_string()]);
    assert!(changes.pruned.is_empty());
    assert_eq!(changes.refused.len(), 1);
    assert_eq!(changes.refused[0].child, "ConfigMap/w-config");
    assert_eq!(
        changes.refusal().map(|e| e.reason().as_str()),
        Some("ChildNameConflict")
    );
    Ok(())
}

#[tokio::test]
async fn an_object_controlled_by_another_owner_is_never_adopted() -> Result<()> {
    let server = server_with_crd().await?;
    let owner = create_widget(&server, "w", 3).await?;
    let other = create_widget(&server, "other", 1).await?;
    // Even handed over by annotation: a controlled object has an owner that would lose it.
    create_configmap(
        &server,
        json!({"metadata": {
            "name": "w-config",
            "labels": {"app.kubernetes.io/managed-by": IDENTITY.manager},
            "annotations": {ADOPT_ANNOTATION: "Widget/w"},
            "ownerReferences": [{
                "apiVersion": "example.io/v1", "kind": "Widget", "name": "other",
                "uid": other.uid(), "controller": true,
            }],
        }}),
    )
    .await?;
    let before = stored(&server, "w-config")?;

    // Cached (the object carries this operator's label, so the cache holds it) and uncached.
    let (cached, watch) = Children::<ConfigMap>::watched(server.client(), IDENTITY, None);
    tokio::spawn(watch_forever(watch));
    cached.wait_until_ready().await;
    for children in [
        cached,
        Children::<ConfigMap>::uncached(server.client(), IDENTITY),
    ] {
        let refused = children
            .apply(&owner, desired_configmap(&owner, "config"))
            .await;
        let Err(error) = refused else {
            bail!("expected a conflict, got {refused:?}");
        };
        assert!(
            error
                .to_string()
                .contains("already exists and is controlled by Widget other"),
            "{error}"
        );
    }
    assert_eq!(stored(&server, "w-config")?, before);
    Ok(())
}

#[tokio::test]
async fn an_unowned_object_handed_over_by_annotation_is_adopted() -> Result<()> {
    let server = server_with_crd().await?;
    let owner = create_widget(&server, "w", 3).await?;
    create_configmap(
        &server,
        json!({"metadata": {"name": "w-config", "annotations": {ADOPT_ANNOTATION: "Widget/w"}}}),
    )
    .await?;
    let children = Children::<ConfigMap>::uncached(server.client(), IDENTITY);
    assert_eq!(
        children
            .apply(&owner, desired_configmap(&owner, "config"))
            .await?,
        Applied::Updated
    );
    let cm = stored(&server, "w-config")?;
    assert_eq!(
        cm["metadata"]["ownerReferences"][0]["uid"],
        json!(owner.uid())
    );
    assert_eq!(cm["data"]["size"], "3");

    // Handed to another owner's name: still refused.
    create_configmap(
        &server,
        json!({"metadata": {"name": "w-b", "annotations": {ADOPT_ANNOTATION: "Widget/someone-else"}}}),
    )
    .await?;
    assert!(
        children
            .apply(&owner, desired_configmap(&owner, "b"))
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn an_object_the_user_names_is_used_as_it_is() -> Result<()> {
    let server = server_with_crd().await?;
    let owner = create_widget(&server, "w", 3).await?;
    let accounts: Api<ServiceAccount> = Api::default_namespaced(server.client());
    let account = |name: &str| -> Result<ServiceAccount> {
        Ok(serde_json::from_value(json!({"metadata": {"name": name}}))?)
    };
    accounts
        .create(&PostParams::default(), &account("other-team-sa")?)
        .await?;
    let before = server.object("v1", "serviceaccounts", "default", "other-team-sa");
    let children = Children::<ServiceAccount>::uncached(server.client(), IDENTITY);

    let used = children
        .apply_with(&owner, account("other-team-sa")?, Foreign::Use)
        .await?;
    assert_eq!(used, Applied::UsedExisting);
    assert_eq!(
        server.object("v1", "serviceaccounts", "default", "other-team-sa"),
        before,
        "used, never changed or owned"
    );
    // Not the operator's, so prune never deletes it.
    assert!(
        children
            .prune(&owner, &Default::default())
            .await?
            .is_empty()
    );
    assert!(accounts.get_opt("other-team-sa").await?.is_some());

    // Missing: created and owned.
    assert_eq!(
        children
            .apply_with(&owner, account("w-sa")?, Foreign::Use)
            .await?,
        Applied::Created
    );
    let created = accounts.get("w-sa").await?;
    assert_eq!(
        created.owner_references()[0].uid,
        owner.uid().unwrap_or_default()
    );
    Ok(())
}

async fn watch_forever<K>(watch: operator_core::ChildWatch<K>)
where
    K: kube::Resource<DynamicType = ()> + 'static,
{
    let mut stream = watch.into_stream();
    while stream.next().await.is_some() {}
}

fn desired_hpa(owner: &Widget) -> Result<HorizontalPodAutoscaler> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": format!("{}-hpa", owner.name_any())},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner.name_any()},
            "minReplicas": 1,
            "maxReplicas": owner.spec.size,
        },
    }))?)
}

/// On a real server an HPA has no generation and its controller rewrites the status every
/// 15 s: neither may make a converged child cost an apply.
#[tokio::test]
async fn a_child_rewritten_by_its_controller_costs_no_apply_when_converged() -> Result<()> {
    let server = server_with_crd().await?;
    let owner = create_widget(&server, "w", 3).await?;
    let (hpas, watch) =
        Children::<HorizontalPodAutoscaler>::watched(server.client(), IDENTITY, None);
    tokio::spawn(watch_forever(watch));
    hpas.wait_until_ready().await;
    assert_eq!(
        hpas.apply(&owner, desired_hpa(&owner)?).await?,
        Applied::Created
    );
    let stored = server
        .object(
            "autoscaling/v2",
            "horizontalpodautoscalers",
            "default",
            "w-hpa",
        )
        .context("hpa")?;
    assert!(
        stored["metadata"]["generation"].is_null(),
        "an HPA keeps no generation, as on a real server"
    );

    let api: Api<HorizontalPodAutoscaler> = Api::default_namespaced(server.client());
    for replicas in 1..=3 {
        // The HPA controller's status write (an Update of the status subresource).
        api.patch_status(
            "w-hpa",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"currentReplicas": replicas, "desiredReplicas": replicas}}),
            ),
        )
        .await?;
        wait_for_cache(&hpas, &server).await?;
        server.reset_stats();
        assert_eq!(
            hpas.apply(&owner, desired_hpa(&owner)?).await?,
            Applied::Unchanged
        );
        assert_eq!(
            server.stats().total(),
            0,
            "no request for a converged child"
        );
    }

    // Someone takes over a field the operator owns: that is drift, and it is repaired.
    api.patch(
        "w-hpa",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"maxReplicas": 9}})),
    )
    .await?;
    wait_for_cache(&hpas, &server).await?;
    assert_eq!(
        hpas.apply(&owner, desired_hpa(&owner)?).await?,
        Applied::Updated
    );
    assert_eq!(
        api.get("w-hpa").await?.spec.map(|s| s.max_replicas),
        Some(3)
    );
    Ok(())
}

/// Waits until the child cache has seen the server's latest write of `w-hpa`.
async fn wait_for_cache(
    hpas: &Children<HorizontalPodAutoscaler>,
    server: &ApiServer,
) -> Result<()> {
    let latest = server
        .object(
            "autoscaling/v2",
            "horizontalpodautoscalers",
            "default",
            "w-hpa",
        )
        .and_then(|o| o["metadata"]["resourceVersion"].as_str().map(String::from));
    for _ in 0..500 {
        if hpas.cached_resource_version(Some("default"), "w-hpa") == latest {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("the cache never saw resourceVersion {latest:?}")
}

/// A child too big for the API server to store is refused before it is sent: nothing is
/// written, and the error says how big it is and what to change.
#[tokio::test]
async fn a_child_over_the_size_limit_is_refused_before_it_is_sent() -> Result<()> {
    let server = server_with_crd().await?;
    let owner = create_widget(&server, "w", 3).await?;
    let children = Children::<ConfigMap>::uncached(server.client(), IDENTITY);
    let mut big = desired_configmap(&owner, "config");
    big.data = Some([("config.json".to_string(), "x".repeat(1024 * 1024))].into());
    server.reset_stats();
    let refused = children.apply(&owner, big).await;
    let Err(error @ Error::ChildRejected { .. }) = refused else {
        bail!("expected a refusal, got {refused:?}");
    };
    let message = error.to_string();
    assert!(message.contains("at most 1048576 bytes"), "{message}");
    assert_eq!(server.stats().writes(), 0, "nothing was sent");
    assert!(stored(&server, "w-config").is_err(), "nothing was created");
    Ok(())
}

/// An object whose hand-over annotation names no one here is not taken, and the conflict says
/// what the annotation holds and what it takes.
#[tokio::test]
async fn a_hand_over_to_no_one_is_named_in_the_conflict() -> Result<()> {
    let server = server_with_crd().await?;
    let owner = create_widget(&server, "w", 3).await?;
    create_configmap(
        &server,
        json!({"metadata": {"name": "w-config", "annotations": {ADOPT_ANNOTATION: "garbage"}}}),
    )
    .await?;
    let children = Children::<ConfigMap>::uncached(server.client(), IDENTITY);
    let refused = children
        .apply(&owner, desired_configmap(&owner, "config"))
        .await;
    let Err(error @ Error::ChildNameConflict { .. }) = refused else {
        bail!("expected a name conflict, got {refused:?}");
    };
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "{ADOPT_ANNOTATION}=garbage hands it to no one here"
        )) && message.contains("Widget/w"),
        "{message}"
    );
    Ok(())
}

fn deployment(name: &str, replicas: Option<i32>) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
            },
        },
    }))?)
}

/// The hand-over of `replicas` to an autoscaler claims them on the Deployment the operator
/// observed holding them, and on no other: one deleted and created again under the same name
/// by someone else keeps its replicas and its managers.
#[tokio::test]
async fn a_hand_over_claims_replicas_only_on_the_deployment_observed() -> Result<()> {
    let server = ApiServer::new();
    let deployments: Api<Deployment> = Api::default_namespaced(server.client());
    let manager = IDENTITY.manager;
    let applied = deployments
        .patch(
            "pay",
            &PatchParams::apply(manager),
            &Patch::Apply(deployment("pay", Some(4))?),
        )
        .await?;
    let held = held_replicas(&applied, manager, 4).context("the operator's apply holds them")?;
    let autoscaled = deployment("pay", None)?;

    // Someone else's Deployment now has the name, its replicas left to the default (so no
    // manager would object to a claim).
    deployments.delete("pay", &Default::default()).await?;
    let foreign = deployments
        .create(&PostParams::default(), &deployment("pay", None)?)
        .await?;
    let refused =
        hand_replicas_to_autoscaler(&deployments, manager, &autoscaled, Some(&held)).await;
    assert!(
        refused.is_err(),
        "the claim must not land on another object"
    );
    let after = deployments.get("pay").await?;
    assert_eq!(
        after.spec.and_then(|s| s.replicas),
        foreign.spec.and_then(|s| s.replicas)
    );
    assert_eq!(
        after.metadata.managed_fields,
        foreign.metadata.managed_fields
    );

    // On the Deployment it observed, the claim keeps the replicas when the operator's apply
    // leaves them out.
    let ours = deployments
        .patch(
            "pay",
            &PatchParams::apply(manager).force(),
            &Patch::Apply(deployment("pay", Some(4))?),
        )
        .await?;
    let held = held_replicas(&ours, manager, 4).context("held again")?;
    hand_replicas_to_autoscaler(&deployments, manager, &autoscaled, Some(&held)).await?;
    deployments
        .patch(
            "pay",
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&autoscaled),
        )
        .await?;
    let handed = deployments.get("pay").await?;
    assert_eq!(handed.spec.and_then(|s| s.replicas), Some(4));
    Ok(())
}
