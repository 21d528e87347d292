//! The reconcile pipeline: fetch → validate (the spec, and a scale-down against the observed
//! load) → observe the Deployment, autoscaler and referenced Secrets → check the partners
//! when due → decide the routing weights ([`crate::partners`]) → build every child (pure) →
//! apply and prune → status, events and metrics from what was applied and observed. On
//! deletion, the drain ([`drain`]) runs before the finalizer goes.

mod checks;
mod drain;
pub(crate) mod observe;
mod status;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use operator_core::autoscaling::hand_replicas_to_autoscaler;
use operator_core::conditions::set_not_ready;
use operator_core::finalizer::with_finalizer;
use operator_core::runtime::config::WorkloadDefaults;
use operator_core::{Changes, Clock, Context, OptionalChild, Result};

use crate::crd::{ClearingAdapter, Phase};
use crate::health::PartnerProbe;
use crate::metrics::AdapterMetrics;
use crate::partners::{self, PartnerPlan, Transition};
use crate::resources::{self, DesiredChildren, Inputs};
use crate::validate;

pub use observe::Workload;
pub use status::{Checks, observed_status};

/// Seed 001's graceful-shutdown finalizer, under the product's name.
pub const FINALIZER: &str = "payments.io/clearing-adapter-drain";

/// The operator's own part of the reconcile context.
#[derive(Clone)]
pub struct AdapterOperator {
    pub defaults: WorkloadDefaults,
    /// The adapter image.
    pub image: String,
    /// The partner check; `None` when the operator's config switches checks off.
    pub probe: Option<Arc<dyn PartnerProbe>>,
    pub metrics: AdapterMetrics,
    pub now: Clock,
}

impl std::fmt::Debug for AdapterOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterOperator")
            .field("defaults", &self.defaults)
            .field("image", &self.image)
            .field("checks", &self.probe.is_some())
            .finish_non_exhaustive()
    }
}

type Ctx = Arc<Context<AdapterOperator>>;

pub async fn reconcile(ca: Arc<ClearingAdapter>, ctx: Ctx) -> Result<Action> {
    let adapters = ctx.api_beside::<ClearingAdapter, _>(&*ca);
    with_finalizer(
        &adapters,
        FINALIZER,
        ca,
        |ca| apply(ca, ctx.clone()),
        |ca, deletion| drain::drain(ca, deletion, ctx.clone()),
    )
    .await
}

async fn apply(ca: Arc<ClearingAdapter>, ctx: Ctx) -> Result<Action> {
    let op = &ctx.operator;
    if ctx.status_writes.is_stale(&*ca) {
        return Ok(ctx.resync());
    }
    let now = (op.now)();
    let name = ca.name_any();

    let workload = observe::workload(&ca, &ctx).await?;
    let mut errors = validate::validate(&name, &ca.spec);
    if let Some(floor) = workload.applied_floor {
        errors.extend(validate::validate_update(floor, &ca.spec, &workload.load));
    }
    if let Some(refused) = ctx.check_spec(&*ca, &[], errors, Phase::Failed, now).await {
        return refused;
    }
    let secrets = match observe::secrets(&ca, &ctx).await? {
        Ok(secrets) => secrets,
        Err(missing) => {
            return ctx
                .wait_for_secret(&*ca, &missing, Phase::Pending, now)
                .await;
        }
    };

    let previous = ca
        .status
        .as_ref()
        .map(|s| s.banking_partner_status.clone())
        .unwrap_or_default();
    let due = op
        .probe
        .as_ref()
        .filter(|_| checks::due(&ca.spec, &previous, now));
    let verdicts = match due {
        Some(probe) => Some(checks::run(probe.as_ref(), &ca.spec, &secrets).await),
        None => None,
    };
    let plan = partners::plan(&ca.spec, &previous, verdicts.as_ref(), now);

    let inputs = Inputs {
        weights: plan.weights(),
        secret_versions: secrets.versions.clone(),
        draining: false,
    };
    let desired = resources::desired_children(&ca, &inputs, &op.defaults, &op.image);
    let (changes, monitor) = apply_children(&ca, &ctx, desired, &workload).await?;
    let refusal = changes.refusal();

    let mut next = observed_status(
        &ca,
        &plan,
        &workload,
        Checks {
            enabled: op.probe.is_some(),
            monitor,
        },
        now,
    );
    if let Some(refusal) = &refusal {
        set_not_ready(&mut next.conditions, refusal, ca.meta().generation, now);
    }
    announce(&ca, &ctx, &plan, &changes).await;
    ctx.write_status(&*ca, &next).await?;
    if let Some(v) = &verdicts {
        let failed = v.values().filter(|v| !v.healthy).count();
        op.metrics.observe(&ca, &plan, v.len(), failed);
    } else {
        op.metrics.observe(&ca, &plan, 0, 0);
    }
    if let Some(refusal) = refusal {
        return Err(refusal);
    }
    let resync = ctx.settings().resync;
    Ok(
        match op
            .probe
            .as_ref()
            .map(|_| checks::next_due(&ca.spec, &plan.statuses, now))
        {
            Some(after) if after < resync => Action::requeue(after.max(Duration::from_secs(1))),
            _ => ctx.resync(),
        },
    )
}

async fn apply_children(
    ca: &ClearingAdapter,
    ctx: &Ctx,
    desired: DesiredChildren,
    workload: &Workload,
) -> Result<(Changes, OptionalChild)> {
    let mut pass = ctx.children.pass(ca);
    // The routing table before the pods that read it.
    pass.apply(desired.config_map).await?;
    let autoscaled = desired
        .deployment
        .spec
        .as_ref()
        .is_some_and(|s| s.replicas.is_none());
    if autoscaled && workload.operator_owns_replicas {
        let deployments = ctx.api_beside::<Deployment, _>(ca);
        hand_replicas_to_autoscaler(
            &deployments,
            ctx.identity.manager,
            &ca.name_any(),
            workload.current_replicas,
        )
        .await?;
    }
    pass.apply(desired.deployment).await?;
    pass.apply(desired.service).await?;
    pass.apply(desired.network_policy).await?;
    if let Some(hpa) = desired.hpa {
        pass.apply(hpa).await?;
    }
    if let Some(pdb) = desired.pdb {
        pass.apply(pdb).await?;
    }
    let monitor = pass.apply_optional(desired.service_monitor).await?;
    Ok((pass.finish().await?, monitor))
}

/// Events: what the pass created or changed, each partner drained or restored, and every
/// partner down.
async fn announce(ca: &ClearingAdapter, ctx: &Ctx, plan: &PartnerPlan, changes: &Changes) {
    let events = &ctx.events;
    events.changes(ca, changes).await;
    for t in &plan.transitions {
        match t {
            Transition::Drained {
                partner,
                failures,
                message,
            } if !plan.all_down => {
                let note = format!(
                    "partner {partner} failed {failures} health checks in a row ({message}): drained to weight 0 in {}; its traffic goes to the other partners",
                    resources::config_name(&ca.name_any())
                );
                events
                    .warning(ca, operator_core::reason!("PartnerDrained"), "Route", note)
                    .await;
            }
            Transition::Drained { .. } => {}
            Transition::Restored { partner, successes } => {
                let note = format!(
                    "partner {partner} passed {successes} health checks in a row: its configured weight is restored"
                );
                events
                    .normal(ca, operator_core::reason!("PartnerRestored"), "Route", note)
                    .await;
            }
        }
    }
    let was_down = ca
        .status
        .as_ref()
        .and_then(|s| operator_core::conditions::find(&s.conditions, status::PARTNERS_HEALTHY))
        .is_some_and(|c| c.reason == "AllPartnersDown");
    if plan.all_down && !was_down {
        events
            .warning(
                ca,
                operator_core::reason!("AllPartnersDown"),
                "Route",
                "every partner carrying traffic fails its health checks: the configured weights are kept (draining all would stop every payment); check the partners' status pages and the adapter's egress",
            )
            .await;
    }
}
