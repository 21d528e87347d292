//! The reconcile loop: fetch → validate → observe the Deployments → plan the rollout (pure) →
//! build every child (pure) → apply and prune → status from what was applied and observed;
//! and on deletion, the cleanup before the finalizer goes.

mod apply;
mod cleanup;
mod events;
mod observe;
mod status;

use std::sync::Arc;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use operator_core::prometheus::MetricsQuery;
use operator_core::runtime::own_image::own_image;
use operator_core::{Context, PassStart, Result};

use crate::Settings;
use crate::crd::{PaymentService, Phase};
use crate::metrics::PaymentMetrics;
use crate::resources::{self, backup_name};
use crate::rollout::{self, ABORT_ANNOTATION, PROMOTE_ANNOTATION, RolloutInput, RolloutPlan};

use apply::apply_children;
use cleanup::cleanup;
use events::announce;
pub use observe::deployment_state;
use observe::{external_inputs, measure_canary, observe_deployments};
pub use status::observed_status;

/// The finalizer seed 000 names.
pub const FINALIZER: &str = "payments.io/cleanup";

/// How every pass starts ([`PassStart`]): a spec refused before the service ever ran is
/// `Failed`.
const START: PassStart<Phase> = PassStart::new(crate::ANNOTATIONS, Phase::Failed);

/// The operator's own part of the reconcile context.
#[derive(Clone)]
pub struct PaymentOperator {
    pub settings: Settings,
    /// The backup Jobs' image, found on the first pass that needs it.
    pub backup_image: Arc<tokio::sync::OnceCell<String>>,
    pub metrics: PaymentMetrics,
    /// Where canary analysis metrics are read (`operator.prometheus`); none: they cannot be
    /// judged, and a canary with metrics holds.
    pub prometheus: Option<Arc<dyn MetricsQuery>>,
}

impl std::fmt::Debug for PaymentOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentOperator")
            .field("settings", &self.settings)
            .field("prometheus", &self.prometheus.is_some())
            .finish_non_exhaustive()
    }
}

impl PaymentOperator {
    /// The backup Jobs' image: the config's `backupImage`; else the image this operator runs
    /// (by digest, from its own Pod), so a Job runs exactly this release from the registry
    /// the platform uses; else [`crate::RELEASE_IMAGE`]. Found once: a Pod that cannot be
    /// read does not hold up any service, it is warned of with what to do.
    async fn backup_image(&self, client: &kube::Client) -> &str {
        let image = self.backup_image.get_or_init(|| async {
            if let Some(configured) = &self.settings.backup_image {
                return configured.clone();
            }
            match own_image(client, OPERATOR_CONTAINER).await {
                Ok(Some(own)) => own,
                Ok(None) => crate::RELEASE_IMAGE.to_string(),
                Err(error) => {
                    tracing::warn!(
                        %error,
                        image = crate::RELEASE_IMAGE,
                        "could not read this operator's Pod for its image; backup Jobs run this release's image by tag. Grant `get pods` in the operator's namespace (deploy/payment-service does) or set paymentService.backupImage"
                    );
                    crate::RELEASE_IMAGE.to_string()
                }
            }
        });
        image.await.as_str()
    }
}

/// The operator's container in its Deployment (deploy/payment-service).
const OPERATOR_CONTAINER: &str = "manager";

type Ctx = Arc<Context<PaymentOperator>>;

pub async fn reconcile(ps: Arc<PaymentService>, ctx: Ctx) -> Result<Action> {
    ctx.finalized_pass(ps, FINALIZER, START, apply, cleanup)
        .await
}

async fn apply(ps: Arc<PaymentService>, ctx: Ctx, now: Timestamp) -> Result<Action> {
    let op = &ctx.operator;
    let name = ps.name_any();
    let external = match external_inputs(&ps, &ctx).await? {
        Ok(external) => external,
        Err(missing) => {
            return ctx
                .wait_for_secret(&*ps, &[missing], Phase::Pending, now)
                .await;
        }
    };

    let deployments = observe_deployments(&ps, &ctx).await?;
    let observed = &deployments.states;
    let measurements = measure_canary(&ps, op.prometheus.as_deref(), observed, now).await;
    let plan = rollout::plan(&RolloutInput {
        measurements: &measurements,
        ..RolloutInput::of(&ps, observed, now)
    });
    promotion_named(&ps, &ctx, &plan).await;
    abort_named(&ps, &ctx, &plan).await;
    let backup_image = match ps.spec.backup() {
        Some(_) => op.backup_image(&ctx.client).await,
        None => "",
    };
    let desired = resources::desired_children(&ps, &plan, ctx.workloads(), backup_image, &external);
    let (changes, monitor) = apply_children(&ps, &ctx, desired, &plan, &deployments).await?;
    let refusal = changes.refusal();

    let last_backup = match ps.spec.backup() {
        Some(_) => ctx
            .controlled::<CronJob, _>(&*ps, &backup_name(&name))
            .await?
            .and_then(|c| c.status)
            .and_then(|s| s.last_successful_time),
        None => None,
    };
    let mut next = observed_status(&ps, &plan, observed, monitor, last_backup, now);
    match (&next.last_backup, ps.spec.backup()) {
        (Some(at), Some(_)) => {
            op.metrics.last_backup.of(&ps).set(at.0.as_second());
        }
        _ => op.metrics.last_backup.forget(&ps),
    }
    announce(&ps, &ctx, &plan, &next).await;
    ctx.end_pass(&*ps, &mut next, &changes, now).await?;
    // While a rollout is in progress, look again soon: its pods may start to crash-loop.
    let look_again = plan.rollout.as_ref().map(|_| rollout::CRASH_CHECK_INTERVAL);
    let then = match plan.requeue_after.into_iter().chain(look_again).min() {
        Some(after) if after < ctx.settings().resync => Action::requeue(after),
        _ => ctx.resync(),
    };
    refusal.map_or(Ok(then), Err)
}

/// A `payments.io/promote` that names no version this service has (not the spec's, the
/// serving one or the one waiting on the idle colour) promotes nothing: said once.
async fn promotion_named(ps: &PaymentService, ctx: &Ctx, plan: &RolloutPlan) {
    let Some(value) = ps.annotations().get(PROMOTE_ANNOTATION) else {
        return;
    };
    let waiting = plan.awaiting_promotion.as_ref().map(|r| r.version.as_str());
    let serving = plan.stable.as_ref().map(|r| r.version.as_str());
    let known = [Some(ps.spec.version.as_str()), waiting, serving];
    if known.contains(&Some(value.as_str())) {
        return;
    }
    let why = match waiting {
        Some(v) => format!("the version waiting for promotion is {v}"),
        None => "no version is waiting for promotion (a blue-green rollout with autoPromote: false waits with the new version on the idle colour)".into(),
    };
    let note = format!("annotation {PROMOTE_ANNOTATION}={value} is ignored: {why}");
    ctx.warn_once(ps, PROMOTE_ANNOTATION, value, note).await;
}

/// A `payments.io/abort` that names no version rolling out with one to go back to aborts
/// nothing: said once.
async fn abort_named(ps: &PaymentService, ctx: &Ctx, plan: &RolloutPlan) {
    let Some(value) = ps.annotations().get(ABORT_ANNOTATION) else {
        return;
    };
    let target = ps.spec.version.as_str();
    let why = match plan.stable.as_ref().map(|r| r.version.as_str()) {
        None => format!("{target} is the first version: there is none to go back to"),
        Some(serving) if serving == target => {
            format!("{target} already serves: no rollout is in progress")
        }
        Some(_) if value == target => return,
        Some(_) => format!("the version rolling out is {target}"),
    };
    let note = format!("annotation {ABORT_ANNOTATION}={value} is ignored: {why}");
    ctx.warn_once(ps, ABORT_ANNOTATION, value, note).await;
}
