//! The test operator both test files use: a `Widget` custom resource with one ConfigMap child.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use operator_core::OperatorIdentity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use testkit::ApiServer;

pub const IDENTITY: OperatorIdentity = OperatorIdentity {
    manager: "widget-operator",
    app_name: "widget",
};

#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "example.io",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
pub struct WidgetSpec {
    pub size: i32,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
pub struct WidgetStatus {
    pub ready: bool,
}

pub async fn server_with_crd() -> Result<ApiServer> {
    let server = ApiServer::new();
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    crds.create(&PostParams::default(), &Widget::crd()).await?;
    Ok(server)
}

pub async fn create_widget(server: &ApiServer, name: &str, size: i32) -> Result<Widget> {
    let api: Api<Widget> = Api::default_namespaced(server.client());
    Ok(api
        .create(
            &PostParams::default(),
            &Widget::new(name, WidgetSpec { size }),
        )
        .await?)
}

pub fn desired_configmap(owner: &Widget, suffix: &str) -> ConfigMap {
    ConfigMap {
        metadata: kube::core::ObjectMeta {
            name: Some(format!("{}-{suffix}", owner.name_any())),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "size".to_string(),
            owner.spec.size.to_string(),
        )])),
        ..Default::default()
    }
}

/// Polls `check` until it holds, for at most ten seconds.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    for _ in 0..1000 {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("timed out waiting for {what}")
}
