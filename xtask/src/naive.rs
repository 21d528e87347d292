//! The naive baseline the benchmark compares against: a reconcile that reads and replaces
//! every child and the status on every pass, as many hand-written operators do. It builds
//! the same children with the same builders, so the difference is only how it writes them.
//! Run by the benchmark as `xtask naive-operator` (with `KUBECONFIG` set).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use operator_core::runtime::config::WorkloadDefaults;
use serde::Serialize;
use serde::de::DeserializeOwned;
use trading_algorithm::crd::TradingAlgorithm;
use trading_algorithm::reconcile::observed_status;
use trading_algorithm::resources::{deployment_name, desired_children};
use trading_algorithm::risk::TradingState;

const RESYNC: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct Failed(#[from] kube::Error);

/// GET the child; PUT it over whatever is there (or POST it when missing). `keep` copies
/// what must survive from the live object.
async fn replace<K>(
    client: &kube::Client,
    owner: &TradingAlgorithm,
    mut child: K,
    keep: fn(&K, &mut K),
) -> Result<(), Failed>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let ns = owner.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    child.meta_mut().namespace = Some(ns);
    child.meta_mut().owner_references = owner.controller_owner_ref(&()).map(|r| vec![r]);
    let name = child.name_any();
    match api.get_opt(&name).await? {
        Some(existing) => {
            keep(&existing, &mut child);
            child.meta_mut().resource_version = existing.resource_version();
            api.replace(&name, &PostParams::default(), &child).await?;
        }
        None => {
            api.create(&PostParams::default(), &child).await?;
        }
    }
    Ok(())
}

/// Without this the baseline would drop `replicas` on every pass and fight the autoscaler.
fn keep_replicas(existing: &Deployment, desired: &mut Deployment) {
    if let (Some(live), Some(spec)) = (existing.spec.as_ref(), desired.spec.as_mut()) {
        spec.replicas = live.replicas;
    }
}

async fn reconcile(ta: Arc<TradingAlgorithm>, client: Arc<kube::Client>) -> Result<Action, Failed> {
    let children = desired_children(&ta, &WorkloadDefaults::default(), false);
    replace(&client, &ta, children.config, |_, _| {}).await?;
    replace(&client, &ta, children.deployment, keep_replicas).await?;
    replace(&client, &ta, children.service, |_, _| {}).await?;
    if let Some(hpa) = children.hpa {
        replace(&client, &ta, hpa, |_, _| {}).await?;
    }
    let ns = ta.namespace().unwrap_or_default();
    let deployment = Api::<Deployment>::namespaced((*client).clone(), &ns)
        .get_opt(&deployment_name(&ta.name_any()))
        .await?
        .and_then(|d| d.status);
    let mut updated = (*ta).clone();
    updated.status = Some(observed_status(
        &ta,
        deployment.as_ref(),
        &TradingState::Trading,
        None,
        true,
        Timestamp::now(),
    ));
    let tas: Api<TradingAlgorithm> = Api::namespaced((*client).clone(), &ns);
    tas.replace_status(&ta.name_any(), &PostParams::default(), &updated)
        .await?;
    Ok(Action::requeue(RESYNC))
}

pub async fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let client = kube::Client::try_default().await?;
    let api: Api<TradingAlgorithm> = Api::all(client.clone());
    Controller::new(api, watcher::Config::default())
        .owns(
            Api::<Deployment>::all(client.clone()),
            watcher::Config::default(),
        )
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            Arc::new(client),
        )
        .for_each(|_| std::future::ready(()))
        .await;
    Ok(())
}
