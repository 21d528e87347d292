//! Observe: what the pass reads before it builds anything — the persistence Secret's version,
//! the definitions the orchestrator holds (`<name>-sagas`, read back from the last write),
//! the instances it runs (`<name>-inflight`), its pods, and its dependencies.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use operator_core::Result;
use operator_core::autoscaling::{HeldReplicas, held_replicas};

use super::{Ctx, SagaOperator};
use crate::crd::{PersistenceType, SagaOrchestrator};
use crate::definitions::{self, Held, InFlight};
use crate::dependencies::{self, Dependencies};
use crate::resources::{in_flight_name, sagas_name};

/// What the orchestrator holds and runs now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub held: Held,
    pub in_flight: InFlight,
    /// `<name>-inflight` keys that are not `<saga>.<version>` → a count.
    pub unreadable: Vec<String>,
    pub replicas: i32,
    pub ready_replicas: i32,
    pub held_replicas: Option<HeldReplicas>,
}

/// The persistence Secret's resourceVersion; `None` when it does not exist.
pub(super) async fn secret_version(so: &SagaOrchestrator, ctx: &Ctx) -> Result<Option<String>> {
    Ok(ctx
        .api_beside::<Secret, _>(so)
        .get_metadata_opt(&so.spec.persistence.secret_name)
        .await?
        .map(|s| s.resource_version().unwrap_or_default()))
}

/// The data of the orchestrator's own ConfigMap `name` (empty when missing or not its).
async fn own_data(
    so: &SagaOrchestrator,
    ctx: &Ctx,
    name: &str,
) -> Result<BTreeMap<String, String>> {
    Ok(ctx
        .controlled::<ConfigMap, _>(so, name)
        .await?
        .and_then(|cm| cm.data)
        .unwrap_or_default())
}

pub(super) async fn observe(so: &SagaOrchestrator, ctx: &Ctx) -> Result<Observed> {
    let name = so.name_any();
    let held = Held::from_data(&own_data(so, ctx, &sagas_name(&name)).await?);
    let (in_flight, unreadable) =
        definitions::read_in_flight(&own_data(so, ctx, &in_flight_name(&name)).await?);
    let deployment = ctx.controlled::<Deployment, _>(so, &name).await?;
    let status = deployment
        .as_ref()
        .and_then(|d| d.status.clone())
        .unwrap_or_default();
    Ok(Observed {
        held,
        in_flight,
        unreadable,
        replicas: status.replicas.unwrap_or_default(),
        ready_replicas: status.ready_replicas.unwrap_or_default(),
        held_replicas: deployment.as_ref().and_then(|d| {
            held_replicas(d, ctx.identity.manager, status.replicas.unwrap_or_default())
        }),
    })
}

/// The dependencies, from the operator's caches of PaymentServices and CloudNativePG clusters.
pub(super) fn dependencies(so: &SagaOrchestrator, op: &SagaOperator) -> Dependencies {
    let namespace = so.namespace().unwrap_or_default();
    let persistence = &so.spec.persistence;
    let cnpg = op.cnpg_served.load(std::sync::atomic::Ordering::SeqCst);
    let cluster = match persistence.type_ {
        PersistenceType::Postgresql if cnpg => {
            let found = op
                .clusters
                .get(&ObjectRef::new(&persistence.cluster_name).within(&namespace));
            Some(match found {
                Some(c) if dependencies::cluster_ready(&c) => Ok(()),
                Some(_) => Err(format!(
                    "CloudNativePG Cluster {} is not ready (not every instance is)",
                    persistence.cluster_name
                )),
                None => Err(format!(
                    "CloudNativePG Cluster {} not found in namespace {namespace}",
                    persistence.cluster_name
                )),
            })
        }
        _ => None,
    };
    let services: BTreeMap<String, std::sync::Arc<_>> = so
        .spec
        .services()
        .into_iter()
        .filter_map(|s| {
            op.services
                .get(&ObjectRef::new(s).within(&namespace))
                .map(|ps| (s.to_string(), ps))
        })
        .collect();
    dependencies::evaluate(
        so.spec.services(),
        |s| services.get(s).map(|a| &**a),
        cluster,
    )
}
