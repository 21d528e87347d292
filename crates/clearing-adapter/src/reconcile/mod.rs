//! The reconcile pipeline: fetch → validate (the spec, and a scale-down against the observed
//! load) → observe the Deployment, autoscaler and referenced Secrets → check the partners
//! when due → decide the routing weights ([`crate::partners`]) → build every child (pure) →
//! apply and prune → read the payments' figures when due ([`business`]) → status, events and
//! metrics from what was applied and observed. On deletion, the drain ([`drain`]) runs before
//! the finalizer goes.

mod apply;
pub mod business;
mod checks;
mod drain;
mod events;
pub(crate) mod observe;
mod status;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use operator_core::{Context, PassStart, Result};

use crate::crd::{ClearingAdapter, Phase};
use crate::health::PartnerProbe;
use crate::metrics::AdapterMetrics;
use crate::partners::{self, DRAIN_ANNOTATION};
use crate::resources::{self, Inputs};
use crate::validate;
use business::LastReads;
use operator_core::prometheus::MetricsQuery;

use apply::apply_children;
use events::announce;
pub use observe::Workload;
pub use status::{Checks, observed_status};

/// Seed 001's graceful-shutdown finalizer, under the product's name.
pub const FINALIZER: &str = "payments.io/clearing-adapter-drain";

/// How every pass starts ([`PassStart`]): a spec refused before the adapter ever ran is
/// `Failed`.
const START: PassStart<Phase> = PassStart::new(crate::ANNOTATIONS, Phase::Failed);

/// The operator's own part of the reconcile context.
#[derive(Clone)]
pub struct AdapterOperator {
    /// The adapter image.
    pub image: String,
    /// The partner check; `None` when the operator's config switches checks off.
    pub probe: Option<Arc<dyn PartnerProbe>>,
    /// Where the adapters' payments are read; `None` without `operator.prometheus`.
    pub prometheus: Option<Arc<dyn MetricsQuery>>,
    pub last_reads: LastReads,
    pub metrics: AdapterMetrics,
}

impl std::fmt::Debug for AdapterOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterOperator")
            .field("image", &self.image)
            .field("checks", &self.probe.is_some())
            .field("prometheus", &self.prometheus.is_some())
            .finish_non_exhaustive()
    }
}

type Ctx = Arc<Context<AdapterOperator>>;

pub async fn reconcile(ca: Arc<ClearingAdapter>, ctx: Ctx) -> Result<Action> {
    ctx.finalized_pass(ca, FINALIZER, START, apply, drain::drain)
        .await
}

async fn apply(ca: Arc<ClearingAdapter>, ctx: Ctx, now: Timestamp) -> Result<Action> {
    // A valid spec may still lower the pod floor below what the load needs: checked against
    // the floor applied, so nothing is applied until it is raised again.
    let workload = observe::workload(&ca, &ctx).await?;
    if let Some(floor) = workload.applied_floor {
        let errors = validate::validate_update(floor, &ca.spec, &workload.load);
        if !errors.is_empty() {
            let refused = operator_core::Error::invalid_spec(errors);
            return ctx.refuse(&*ca, refused, START.never_ran, now).await;
        }
    }
    let secrets = match observe::secrets(&ca, &ctx).await? {
        Ok(secrets) => secrets,
        Err(missing) => {
            return ctx
                .wait_for_secret(&*ca, &missing, Phase::Pending, now)
                .await;
        }
    };

    let op = &ctx.operator;
    let previous = ca.recorded_partners();
    let by_hand = partners::drained_by_hand(&ca);
    let due = op
        .probe
        .as_ref()
        .filter(|_| checks::due(&ca.spec, &previous, now));
    let verdicts = match due {
        Some(probe) => Some(checks::run(probe.as_ref(), &ca.spec, &secrets).await),
        None => None,
    };
    let plan = partners::plan(&ca.spec, &previous, &by_hand, verdicts.as_ref(), now);
    unknown_partners_named(&ca, &ctx, &by_hand).await;

    let inputs = Inputs {
        weights: plan.weights(),
        secret_versions: secrets.versions.clone(),
        draining: false,
    };
    let desired = resources::desired_children(&ca, &inputs, ctx.workloads(), &op.image);
    let (changes, monitor) = apply_children(&ca, &ctx, desired, &workload).await?;
    let refusal = changes.refusal();
    let prometheus = op.prometheus.as_deref();
    let ready = workload.ready_replicas;
    let payments = business::read(prometheus, &op.last_reads, &ca, ready, now).await;

    let mut next = observed_status(
        &ca,
        &plan,
        &workload,
        Checks {
            enabled: op.probe.is_some(),
            monitor,
            payments,
        },
        now,
    );
    announce(&ca, &ctx, &plan, &next).await;
    ctx.end_pass(&*ca, &mut next, &changes, now).await?;
    let failed = verdicts
        .iter()
        .flat_map(|v| v.values())
        .filter(|v| !v.healthy)
        .count();
    let checked = verdicts.as_ref().map_or(0, |v| v.len());
    op.metrics.observe(&ca, &plan, checked, failed);
    let resync = ctx.settings().resync;
    let checks_due = op
        .probe
        .as_ref()
        .map(|_| checks::next_due(&ca.spec, &plan.statuses, now));
    let payments_due = op
        .prometheus
        .as_ref()
        .filter(|_| ca.spec.monitoring.enabled && ready > 0)
        .map(|_| op.last_reads.due_in(&ca, now));
    let then = match checks_due.into_iter().chain(payments_due).min() {
        Some(after) if after < resync => Action::requeue(after.max(Duration::from_secs(1))),
        _ => ctx.resync(),
    };
    refusal.map_or(Ok(then), Err)
}

/// A `payments.io/drain-partners` naming a partner the spec does not have drains nothing of
/// it: said once.
async fn unknown_partners_named(ca: &ClearingAdapter, ctx: &Ctx, by_hand: &BTreeSet<String>) {
    let partners: Vec<&str> = ca
        .spec
        .config
        .banking_partners
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let unknown: Vec<&str> = by_hand
        .iter()
        .map(String::as_str)
        .filter(|n| !partners.contains(n))
        .collect();
    if unknown.is_empty() {
        return;
    }
    let value = ca
        .annotations()
        .get(DRAIN_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let note = format!(
        "annotation {DRAIN_ANNOTATION}={value} names no partner {} of this adapter (its partners: {}): nothing is drained for it",
        unknown.join(", "),
        partners.join(", ")
    );
    ctx.warn_once(ca, DRAIN_ANNOTATION, &value, note).await;
}
