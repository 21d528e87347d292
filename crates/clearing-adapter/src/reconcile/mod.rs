//! The reconcile pipeline: fetch → validate (the spec, and a scale-down against the observed
//! load) → observe the Deployment, autoscaler and referenced Secrets → check the partners
//! when due → decide the routing weights ([`crate::partners`]) → build every child (pure) →
//! apply and prune → status, events and metrics from what was applied and observed. On
//! deletion, the drain ([`drain`]) runs before the finalizer goes.

mod apply;
mod checks;
mod drain;
mod events;
pub(crate) mod observe;
mod status;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use operator_core::builder::WorkloadDefaults;
use operator_core::error::set_not_ready;
use operator_core::finalizer::with_finalizer;
use operator_core::{Clock, Context, Result};

use crate::crd::{ClearingAdapter, Phase};
use crate::health::PartnerProbe;
use crate::metrics::AdapterMetrics;
use crate::partners::{self};
use crate::resources::{self, Inputs};
use crate::validate;

use apply::apply_children;
use events::announce;
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

    let previous = ca.recorded_partners();
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
