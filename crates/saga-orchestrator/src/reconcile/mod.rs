//! The reconcile pipeline: fetch → validate the spec (refused whole) → the persistence
//! Secret → observe what the orchestrator holds and runs (`<name>-sagas`, `<name>-inflight`,
//! its Deployment) and its dependencies → validate the definitions (an invalid one keeps the
//! last valid ones in force) → decide the versions to hold ([`crate::definitions`]) → build
//! every child (pure) → apply and prune → status, events and metrics. On deletion, the drain
//! ([`drain`]) runs before the finalizer goes.

mod apply;
mod drain;
mod events;
mod observe;
mod status;

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use operator_core::{Context, FieldError, PassStart, Result};

use crate::crd::{Phase, SagaOrchestrator};
use crate::definitions::{self};
use crate::dependencies::{PaymentServiceView, PostgresClusterView};
use crate::metrics::SagaMetrics;
use crate::resources::{self};
use crate::validate;

use apply::apply_children;
use events::announce;
pub use observe::Observed;
pub use status::observed_status;

/// The finalizer: deletion waits for running sagas (bounded by `drainTimeout`).
pub const FINALIZER: &str = "payments.io/saga-drain";

/// How every pass starts ([`PassStart`]): the orchestrator reads no annotation of its own, and
/// a spec refused before it ever ran is `Failed`.
const START: PassStart<Phase> = PassStart::new(&[], Phase::Failed);

/// The operator's own part of the reconcile context.
#[derive(Clone, Debug)]
pub struct SagaOperator {
    pub services: Store<PaymentServiceView>,
    /// CloudNativePG clusters; watched when that CRD was installed at start (`cnpg_served`).
    pub clusters: Store<PostgresClusterView>,
    pub cnpg_served: Arc<std::sync::atomic::AtomicBool>,
    pub metrics: SagaMetrics,
}

type Ctx = Arc<Context<SagaOperator>>;

pub async fn reconcile(so: Arc<SagaOrchestrator>, ctx: Ctx) -> Result<Action> {
    ctx.finalized_pass(so, FINALIZER, START, apply, drain::drain)
        .await
}

async fn apply(so: Arc<SagaOrchestrator>, ctx: Ctx, now: Timestamp) -> Result<Action> {
    let secret_version = match observe::secret_version(&so, &ctx).await? {
        Some(version) => version,
        None => {
            let missing = FieldError::new(
                "spec.persistence.secretName",
                format!(
                    "Secret {} does not exist in namespace {}: create it (CloudNativePG creates <cluster>-app) — the orchestrator cannot reach its persistence without it",
                    so.spec.persistence.secret_name,
                    operator_core::namespace_of(&*so)
                ),
            );
            // Invalid definitions are said now too: one fix round, not two.
            let mut problems = vec![missing];
            problems.extend(validate::validate_definitions(&so.spec.sagas));
            return ctx
                .wait_for_secret(&*so, &problems, Phase::Pending, now)
                .await;
        }
    };
    let observed = observe::observe(&so, &ctx).await?;
    let invalid = validate::validate_definitions(&so.spec.sagas);
    let current = invalid.is_empty().then(|| {
        let namespace = operator_core::namespace_of(&*so);
        so.spec
            .sagas
            .iter()
            .map(|s| definitions::render(namespace, s))
            .collect()
    });
    let plan = definitions::plan(
        current,
        &observed.held,
        &observed.in_flight,
        so.spec.definition_history_limit.max(0) as usize,
        false,
    );
    let dependencies = observe::dependencies(&so, &ctx.operator);

    let desired = resources::desired_children(&so, &plan, &secret_version, ctx.workloads());
    let (changes, monitor) = apply_children(&so, &ctx, desired, &observed).await?;
    let refusal = changes.refusal();

    let mut next = observed_status(&so, &plan, &observed, &invalid, &dependencies, monitor, now);
    let sagas_child = format!("ConfigMap/{}", resources::sagas_name(&so.name_any()));
    if let Some(refused) = changes.refused.iter().find(|r| r.child == sagas_child) {
        status::definitions_not_in_force(&mut next, refused, so.meta().generation, now);
    }
    announce(&so, &ctx, &plan, &invalid).await;
    ctx.end_pass(&*so, &mut next, &changes, now).await?;
    ctx.operator
        .metrics
        .observe(&so, &next, &observed.in_flight, dependencies.ready());
    refusal.map_or(Ok(ctx.resync()), Err)
}
