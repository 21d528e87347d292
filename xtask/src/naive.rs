//! The naive baseline the benchmark compares against: a reconcile that reads and replaces
//! every child and the status on every pass, as many hand-written operators do. Each
//! operator declares it ([`NaiveBaseline`]): the child it reads, and the children and status
//! its own builders make of a resource; this runner does the rest the same way for all.
//! Run by the benchmark as `xtask naive-operator <operator>` (with `KUBECONFIG` set).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use operator_core::tooling::NaiveBaseline;
use serde_json::Value;

use crate::OPERATORS;

const RESYNC: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
enum Failed {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Build(String),
}

struct Naive {
    client: kube::Client,
    served: ApiResource,
    baseline: NaiveBaseline,
}

/// The API resource of a kind, from an object's or a declaration's `apiVersion` and `kind`.
fn api_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

fn api(client: &kube::Client, resource: &ApiResource, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, resource)
}

/// What must survive a replace: a Service's cluster IPs (immutable), and the live replicas
/// of a Deployment whose desired spec leaves them to an autoscaler (without this the
/// baseline would drop them on every pass and fight the autoscaler).
fn keep(live: &Value, desired: &mut Value) {
    match desired["kind"].as_str() {
        Some("Service") => {
            for field in ["clusterIP", "clusterIPs"] {
                if let Some(value) = live["spec"].get(field) {
                    desired["spec"][field] = value.clone();
                }
            }
        }
        Some("Deployment") if desired["spec"].get("replicas").is_none() => {
            if let Some(replicas) = live["spec"].get("replicas") {
                desired["spec"]["replicas"] = replicas.clone();
            }
        }
        _ => {}
    }
}

/// GET the child; PUT it over whatever is there (or POST it when missing).
async fn replace(naive: &Naive, owner: &DynamicObject, mut child: Value) -> Result<(), Failed> {
    let namespace = owner.namespace().unwrap_or_default();
    let resource = api_resource(
        child["apiVersion"].as_str().unwrap_or_default(),
        child["kind"].as_str().unwrap_or_default(),
    );
    let owner_ref = owner.controller_owner_ref(&naive.served);
    child["metadata"]["namespace"] = namespace.clone().into();
    child["metadata"]["ownerReferences"] =
        serde_json::to_value(owner_ref.into_iter().collect::<Vec<_>>())?;
    let api = api(&naive.client, &resource, &namespace);
    let name = child["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match api.get_opt(&name).await? {
        Some(existing) => {
            keep(&serde_json::to_value(&existing)?, &mut child);
            child["metadata"]["resourceVersion"] = existing.resource_version().into();
            let object: DynamicObject = serde_json::from_value(child)?;
            api.replace(&name, &PostParams::default(), &object).await?;
        }
        None => {
            let object: DynamicObject = serde_json::from_value(child)?;
            api.create(&PostParams::default(), &object).await?;
        }
    }
    Ok(())
}

async fn reconcile(resource: Arc<DynamicObject>, naive: Arc<Naive>) -> Result<Action, Failed> {
    let namespace = resource.namespace().unwrap_or_default();
    let name = resource.name_any();
    let observes = naive.baseline.observes;
    let observed = api(
        &naive.client,
        &api_resource(observes.api_version, observes.kind),
        &namespace,
    )
    .get_opt(&(observes.name)(&name))
    .await?
    .map(|o| serde_json::to_value(&o))
    .transpose()?;
    let json = serde_json::to_value(&*resource)?;
    let pass = (naive.baseline.pass)(&json, observed.as_ref()).map_err(Failed::Build)?;
    for child in pass.children {
        replace(&naive, &resource, child).await?;
    }
    let mut updated = (*resource).clone();
    updated.data["status"] = pass.status;
    api(&naive.client, &naive.served, &namespace)
        .replace_status(&name, &PostParams::default(), &updated)
        .await?;
    Ok(Action::requeue(RESYNC))
}

fn retry_soon(_: Arc<DynamicObject>, _: &Failed, _: Arc<Naive>) -> Action {
    Action::requeue(Duration::from_secs(1))
}

/// Runs the naive controller for the operator whose package is `package`.
pub async fn run(package: &str) -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let Some(operator) = OPERATORS.iter().find(|o| o.package() == package) else {
        bail!("no operator {package}");
    };
    let Some(baseline) = operator.bench.naive else {
        bail!("{package} declares no naive baseline");
    };
    let served = operator
        .resources
        .first()
        .with_context(|| format!("{package} serves no resource"))?;
    let served = served.resource.resource();
    let client = kube::Client::try_default().await?;
    let observed = api_resource(baseline.observes.api_version, baseline.observes.kind);
    let naive = Arc::new(Naive {
        client: client.clone(),
        served: served.clone(),
        baseline,
    });
    Controller::new_with(
        Api::<DynamicObject>::all_with(client.clone(), &served),
        watcher::Config::default(),
        served,
    )
    .owns_with(
        Api::<DynamicObject>::all_with(client, &observed),
        observed,
        watcher::Config::default(),
    )
    .run(reconcile, retry_soon, naive)
    .for_each(|_| std::future::ready(()))
    .await;
    Ok(())
}
