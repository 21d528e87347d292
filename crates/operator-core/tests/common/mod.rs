//! The test operator the test files share: a `Widget` custom resource with one ConfigMap
//! child, its size validated, its status `ready` once the child is applied.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use operator_core::status::patch_status_if_changed;
use operator_core::{
    ChildKinds, ChildWatches, Context, Error, FieldError, OperatorIdentity, Prune,
};
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

/// The events of the default namespace with `reason`, as the server holds them.
pub fn events_with_reason(server: &ApiServer, reason: &str) -> Vec<serde_json::Value> {
    server
        .objects("events.k8s.io/v1", "events")
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
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

/// Polls `check` until it holds, for at most `limit`.
pub async fn eventually_long(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out waiting for {what}")
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

/// The Widget operator's own part of the context: how many reconciles it ran.
#[derive(Clone, Debug, Default)]
pub struct WidgetOperator {
    pub reconciles: Arc<AtomicUsize>,
}

/// The Widget operator's one child kind.
pub fn widget_children(
    client: kube::Client,
    namespace: Option<&str>,
) -> (ChildKinds, ChildWatches) {
    ChildKinds::builder(client, IDENTITY, namespace)
        .kind::<ConfigMap>(Prune::Yes)
        .build()
}

/// Refuses a negative size; applies `<name>-config`; sets `ready`.
pub async fn reconcile_widget(
    widget: Arc<Widget>,
    ctx: Arc<Context<WidgetOperator>>,
) -> Result<Action, Error> {
    ctx.operator.reconciles.fetch_add(1, Ordering::SeqCst);
    if widget.spec.size < 0 {
        return Err(Error::invalid_spec(vec![FieldError::new(
            "spec.size",
            format!("must be at least 0, got {}", widget.spec.size),
        )]));
    }
    let mut pass = ctx.children.pass(&*widget);
    pass.apply(desired_configmap(&widget, "config")).await?;
    pass.finish().await?;
    let api: Api<Widget> =
        Api::namespaced(ctx.client.clone(), &widget.namespace().unwrap_or_default());
    patch_status_if_changed(
        &api,
        &widget.name_any(),
        widget.status.as_ref(),
        &WidgetStatus { ready: true },
    )
    .await?;
    Ok(ctx.resync())
}

/// The Lease the widget operator's replicas campaign for.
pub const LEASE: &str = "widget-operator-leader";

/// A replica named `identity` that elects its leader on [`LEASE`] in `default`.
pub fn leader_elected_config(identity: &str) -> operator_core::runtime::config::RuntimeConfig {
    use operator_core::ControllerSettings;
    use operator_core::runtime::config::{LeaderElectionConfig, RuntimeConfig};
    RuntimeConfig {
        leader_election: Some(LeaderElectionConfig {
            lease_name: LEASE.into(),
            namespace: "default".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }),
        ..RuntimeConfig::standalone(ControllerSettings::default())
    }
}
