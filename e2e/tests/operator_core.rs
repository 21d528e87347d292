//! operator-core's apply and prune on a real API server: the same scenario the testkit tests
//! run, so a difference between testkit and Kubernetes shows up here.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use operator_core::{Applied, Children, OperatorIdentity};
use serde_json::json;

const IDENTITY: OperatorIdentity = OperatorIdentity {
    manager: "e2e-operator",
    app_name: "e2e",
};

fn child(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: kube::core::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("value".to_string(), value.to_string())])),
        ..Default::default()
    }
}

#[tokio::test]
async fn apply_skip_repair_and_prune() -> Result<()> {
    let Some(ns) = e2e::cluster("apply").await? else {
        return Ok(());
    };
    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let owner = cms
        .create(&PostParams::default(), &child("owner", "-"))
        .await?;
    let children = Children::<ConfigMap>::uncached(ns.client.clone(), IDENTITY);

    assert_eq!(
        children.apply(&owner, child("a", "1")).await?,
        Applied::Created
    );
    assert_eq!(
        children.apply(&owner, child("b", "1")).await?,
        Applied::Created
    );
    assert_eq!(
        children.apply(&owner, child("a", "1")).await?,
        Applied::Unchanged
    );

    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"value": "drifted"}})),
    )
    .await?;
    assert_eq!(
        children.apply(&owner, child("a", "1")).await?,
        Applied::Updated
    );
    let a = cms.get("a").await?;
    assert_eq!(a.data.context("data")?["value"], "1");

    let pruned = children
        .prune(&owner, &BTreeSet::from(["a".to_string()]))
        .await?;
    assert_eq!(pruned, vec!["b".to_string()]);
    ns.cleanup().await
}
