//! The naive baseline the benchmark compares against: a reconcile that reads and replaces
//! every child and the status on every pass, as many hand-written operators do. It builds
//! the same children with the same builders, so the difference is only how it writes them.
//! Run by the benchmark as `xtask naive-operator <operator>` (with `KUBECONFIG` set).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use batch_processor::crd::BatchProcessor;
use clearing_adapter::crd::ClearingAdapter;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use operator_core::OptionalChild;
use operator_core::runtime::config::WorkloadDefaults;
use payment_service::crd::PaymentService;
use payment_service::reconcile::deployment_state;
use payment_service::rollout::{self, RolloutInput};
use saga_orchestrator::crd::SagaOrchestrator;
use serde::Serialize;
use serde::de::DeserializeOwned;
use trading_algorithm::crd::TradingAlgorithm;
use trading_algorithm::risk::{Assessment, Resume, TradingState};

const RESYNC: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct Failed(#[from] kube::Error);

/// GET the child; PUT it over whatever is there (or POST it when missing). `keep` copies
/// what must survive from the live object.
async fn replace<O, K>(
    client: &kube::Client,
    owner: &O,
    mut child: K,
    keep: fn(&K, &mut K),
) -> Result<(), Failed>
where
    O: Resource<DynamicType = ()>,
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let ns = owner.meta().namespace.clone().unwrap_or_default();
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

fn keep_nothing<K>(_: &K, _: &mut K) {}

fn retry_soon<K>(_: Arc<K>, _: &Failed, _: Arc<kube::Client>) -> Action {
    Action::requeue(Duration::from_secs(1))
}

/// Without this the baseline would drop `replicas` on every pass and fight the autoscaler.
fn keep_replicas(existing: &Deployment, desired: &mut Deployment) {
    if let (Some(live), Some(spec)) = (existing.spec.as_ref(), desired.spec.as_mut()) {
        spec.replicas = live.replicas;
    }
}

/// A Service's cluster IP is immutable: a replace must carry it.
fn keep_cluster_ip(existing: &Service, desired: &mut Service) {
    if let (Some(live), Some(spec)) = (existing.spec.as_ref(), desired.spec.as_mut()) {
        spec.cluster_ip = live.cluster_ip.clone();
        spec.cluster_ips = live.cluster_ips.clone();
    }
}

async fn reconcile_trading(
    ta: Arc<TradingAlgorithm>,
    client: Arc<kube::Client>,
) -> Result<Action, Failed> {
    use trading_algorithm::reconcile::observed_status;
    use trading_algorithm::resources::{deployment_name, desired_children};
    let children = desired_children(&ta, &WorkloadDefaults::default(), false);
    replace(&client, &*ta, children.config, keep_nothing).await?;
    replace(&client, &*ta, children.deployment, keep_replicas).await?;
    replace(&client, &*ta, children.service, keep_cluster_ip).await?;
    if let Some(hpa) = children.hpa {
        replace(&client, &*ta, hpa, keep_nothing).await?;
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
        &Assessment {
            state: TradingState::Trading,
            resume: Resume::Nothing,
        },
        None,
        None,
        true,
        Timestamp::now(),
    ));
    let tas: Api<TradingAlgorithm> = Api::namespaced((*client).clone(), &ns);
    tas.replace_status(&ta.name_any(), &PostParams::default(), &updated)
        .await?;
    Ok(Action::requeue(RESYNC))
}

async fn reconcile_batch(
    bp: Arc<BatchProcessor>,
    client: Arc<kube::Client>,
) -> Result<Action, Failed> {
    use batch_processor::reconcile::observed_status;
    use batch_processor::resources::jobs::desired_cron_job;
    let now = Timestamp::now();
    let cron_job = desired_cron_job(&bp, &WorkloadDefaults::default(), bp.spec.suspend);
    replace(&client, &*bp, cron_job, keep_nothing).await?;
    let plan = batch_processor::runs::plan(&bp, &[], None, None, now);
    let mut updated = (*bp).clone();
    updated.status = Some(observed_status(&bp, &plan, None, now));
    let api: Api<BatchProcessor> =
        Api::namespaced((*client).clone(), &bp.namespace().unwrap_or_default());
    api.replace_status(&bp.name_any(), &PostParams::default(), &updated)
        .await?;
    Ok(Action::requeue(RESYNC))
}

async fn reconcile_payment(
    ps: Arc<PaymentService>,
    client: Arc<kube::Client>,
) -> Result<Action, Failed> {
    use payment_service::reconcile::observed_status;
    use payment_service::resources::{External, desired_children};
    let ns = ps.namespace().unwrap_or_default();
    let name = ps.name_any();
    let observed: BTreeMap<_, _> = Api::<Deployment>::namespaced((*client).clone(), &ns)
        .get_opt(&name)
        .await?
        .map(|d| (name.clone(), deployment_state(&d)))
        .into_iter()
        .collect();
    let plan = rollout::plan(&RolloutInput::of(&ps, &observed, Timestamp::now()));
    let children = desired_children(
        &ps,
        &plan,
        &WorkloadDefaults::default(),
        &payment_service::Settings::default(),
        &External::default(),
    );
    if let Some(sa) = children.service_account {
        replace(&client, &*ps, sa, keep_nothing).await?;
    }
    for d in children.deployments {
        replace(&client, &*ps, d, keep_nothing).await?;
    }
    replace(&client, &*ps, children.service, keep_cluster_ip).await?;
    if let Some(pdb) = children.pdb {
        replace(&client, &*ps, pdb, keep_nothing).await?;
    }
    let mut updated = (*ps).clone();
    updated.status = Some(observed_status(
        &ps,
        &plan,
        &observed,
        OptionalChild::NotWanted,
        None,
        Timestamp::now(),
    ));
    let api: Api<PaymentService> = Api::namespaced((*client).clone(), &ns);
    api.replace_status(&name, &PostParams::default(), &updated)
        .await?;
    Ok(Action::requeue(RESYNC))
}

async fn reconcile_adapter(
    ca: Arc<ClearingAdapter>,
    client: Arc<kube::Client>,
) -> Result<Action, Failed> {
    use clearing_adapter::reconcile::{Checks, Workload, observed_status};
    use clearing_adapter::resources::{Inputs, desired_children};
    let ns = ca.namespace().unwrap_or_default();
    let name = ca.name_any();
    let status = Api::<Deployment>::namespaced((*client).clone(), &ns)
        .get_opt(&name)
        .await?
        .and_then(|d| d.status)
        .unwrap_or_default();
    let workload = Workload {
        exists: true,
        current_replicas: status.replicas.unwrap_or_default(),
        ready_replicas: status.ready_replicas.unwrap_or_default(),
        ..Workload::default()
    };
    let now = Timestamp::now();
    let previous = ca
        .status
        .as_ref()
        .map(|s| s.banking_partner_status.clone())
        .unwrap_or_default();
    let plan = clearing_adapter::partners::plan(&ca.spec, &previous, None, now);
    let inputs = Inputs {
        weights: plan.weights(),
        ..Inputs::default()
    };
    let children = desired_children(
        &ca,
        &inputs,
        &WorkloadDefaults::default(),
        clearing_adapter::FALLBACK_IMAGE,
    );
    replace(&client, &*ca, children.config_map, keep_nothing).await?;
    replace(&client, &*ca, children.deployment, keep_nothing).await?;
    replace(&client, &*ca, children.service, keep_cluster_ip).await?;
    replace(&client, &*ca, children.network_policy, keep_nothing).await?;
    if let Some(pdb) = children.pdb {
        replace(&client, &*ca, pdb, keep_nothing).await?;
    }
    let mut updated = (*ca).clone();
    let checks = Checks {
        enabled: false,
        monitor: OptionalChild::NotWanted,
    };
    updated.status = Some(observed_status(&ca, &plan, &workload, checks, now));
    let api: Api<ClearingAdapter> = Api::namespaced((*client).clone(), &ns);
    api.replace_status(&name, &PostParams::default(), &updated)
        .await?;
    Ok(Action::requeue(RESYNC))
}

async fn reconcile_saga(
    so: Arc<SagaOrchestrator>,
    client: Arc<kube::Client>,
) -> Result<Action, Failed> {
    use saga_orchestrator::definitions::{self, Held, InFlight};
    use saga_orchestrator::dependencies::Dependencies;
    use saga_orchestrator::reconcile::{Observed, observed_status};
    use saga_orchestrator::resources::desired_children;
    let ns = so.namespace().unwrap_or_default();
    let name = so.name_any();
    let status = Api::<Deployment>::namespaced((*client).clone(), &ns)
        .get_opt(&name)
        .await?
        .and_then(|d| d.status)
        .unwrap_or_default();
    let observed = Observed {
        replicas: status.replicas.unwrap_or_default(),
        ready_replicas: status.ready_replicas.unwrap_or_default(),
        ..Observed::default()
    };
    let current = so
        .spec
        .sagas
        .iter()
        .map(|s| definitions::render(&ns, s))
        .collect();
    let plan = definitions::plan(Some(current), &Held::default(), &InFlight::new(), 3, false);
    let children = desired_children(&so, &plan, "", &WorkloadDefaults::default());
    replace(&client, &*so, children.sagas, keep_nothing).await?;
    replace(&client, &*so, children.service_account, keep_nothing).await?;
    replace(&client, &*so, children.role, keep_nothing).await?;
    replace(&client, &*so, children.role_binding, keep_nothing).await?;
    replace(&client, &*so, children.deployment, keep_nothing).await?;
    replace(&client, &*so, children.service, keep_cluster_ip).await?;
    replace(&client, &*so, children.network_policy, keep_nothing).await?;
    if let Some(pdb) = children.pdb {
        replace(&client, &*so, pdb, keep_nothing).await?;
    }
    let mut updated = (*so).clone();
    updated.status = Some(observed_status(
        &so,
        &plan,
        &observed,
        &[],
        &Dependencies::default(),
        OptionalChild::NotWanted,
        Timestamp::now(),
    ));
    let api: Api<SagaOrchestrator> = Api::namespaced((*client).clone(), &ns);
    api.replace_status(&name, &PostParams::default(), &updated)
        .await?;
    Ok(Action::requeue(RESYNC))
}

/// Runs the naive controller for `operator` (`trading-algorithm`, `payment-service`,
/// `batch-processor`, `clearing-adapter` or `saga-orchestrator`).
pub async fn run(operator: &str) -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let client = kube::Client::try_default().await?;
    let deployments = Api::<Deployment>::all(client.clone());
    match operator {
        "trading-algorithm" => {
            Controller::new(
                Api::<TradingAlgorithm>::all(client.clone()),
                watcher::Config::default(),
            )
            .owns(deployments, watcher::Config::default())
            .run(reconcile_trading, retry_soon, Arc::new(client))
            .for_each(|_| std::future::ready(()))
            .await;
        }
        "payment-service" => {
            Controller::new(
                Api::<PaymentService>::all(client.clone()),
                watcher::Config::default(),
            )
            .owns(deployments, watcher::Config::default())
            .run(reconcile_payment, retry_soon, Arc::new(client))
            .for_each(|_| std::future::ready(()))
            .await;
        }
        "batch-processor" => {
            Controller::new(
                Api::<BatchProcessor>::all(client.clone()),
                watcher::Config::default(),
            )
            .owns(
                Api::<CronJob>::all(client.clone()),
                watcher::Config::default(),
            )
            .run(reconcile_batch, retry_soon, Arc::new(client))
            .for_each(|_| std::future::ready(()))
            .await;
        }
        "clearing-adapter" => {
            Controller::new(
                Api::<ClearingAdapter>::all(client.clone()),
                watcher::Config::default(),
            )
            .owns(deployments, watcher::Config::default())
            .run(reconcile_adapter, retry_soon, Arc::new(client))
            .for_each(|_| std::future::ready(()))
            .await;
        }
        "saga-orchestrator" => {
            Controller::new(
                Api::<SagaOrchestrator>::all(client.clone()),
                watcher::Config::default(),
            )
            .owns(deployments, watcher::Config::default())
            .run(reconcile_saga, retry_soon, Arc::new(client))
            .for_each(|_| std::future::ready(()))
            .await;
        }
        other => bail!("no naive baseline for {other}"),
    }
    Ok(())
}
