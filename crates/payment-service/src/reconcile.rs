//! The reconcile loop: fetch → validate → observe the Deployments → plan the rollout (pure) →
//! build every child (pure) → apply and prune → status from what was applied and observed;
//! and on deletion, the cleanup before the finalizer goes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use operator_core::autoscaling::{applies_replicas, hand_replicas_to_autoscaler};
use operator_core::conditions::{ConditionStatus, Observed, remove, set_condition, set_not_ready};
use operator_core::finalizer::{Cleanup, Deletion, with_finalizer};
use operator_core::runtime::config::WorkloadDefaults;
use operator_core::{Changes, Clock, Context, Error, FieldError, Foreign, Result, namespace_of};
use serde_json::json;

use crate::crd::{
    CleanupReport, PaymentService, PaymentServiceStatus, Phase, Revision, StrategyType,
};
use crate::metrics::{PaymentMetrics, RolloutResult};
use crate::resources::service_monitor::ServiceMonitor;
use crate::resources::{self, DesiredChildren, External, backup_name, backup_volume_name};
use crate::rollout::{self, DeploymentState, RolloutInput, RolloutPlan, Transition};
use crate::validate;

/// The finalizer seed 000 names.
pub const FINALIZER: &str = "payments.io/cleanup";

/// The operator's own part of the reconcile context.
#[derive(Clone)]
pub struct PaymentOperator {
    pub defaults: WorkloadDefaults,
    pub metrics: PaymentMetrics,
    /// The clock (tests move it past pauses and deadlines).
    pub now: Clock,
}

impl std::fmt::Debug for PaymentOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentOperator")
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

type Ctx = Arc<Context<PaymentOperator>>;

pub async fn reconcile(ps: Arc<PaymentService>, ctx: Ctx) -> Result<Action> {
    let services = ctx.api_beside::<PaymentService, _>(&*ps);
    with_finalizer(
        &services,
        FINALIZER,
        ps,
        |ps| apply(ps, ctx.clone()),
        |ps, deletion| cleanup(ps, deletion, ctx.clone()),
    )
    .await
}

/// Whether a ServiceMonitor could be applied this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MonitorState {
    /// Prometheus scraping is off.
    NotWanted,
    Applied,
    /// The Prometheus Operator's CRD is not installed.
    Unavailable,
}

async fn apply(ps: Arc<PaymentService>, ctx: Ctx) -> Result<Action> {
    let op = &ctx.operator;
    if ctx.status_writes.is_stale(&*ps) {
        return Ok(ctx.resync());
    }
    let now = (op.now)();
    let name = ps.name_any();

    let errors = validate::validate(&name, &ps.spec);
    if !errors.is_empty() {
        return ctx
            .refuse(&*ps, Error::invalid_spec(errors), Phase::Failed, now)
            .await;
    }
    let external = match external_inputs(&ps, &ctx).await? {
        Ok(external) => external,
        Err(missing) => return wait_for_secret(&ps, &ctx, missing, now).await,
    };

    let deployments = observe_deployments(&ps, &ctx).await?;
    let observed = &deployments.states;
    let plan = rollout::plan(&RolloutInput::of(&ps, observed, now));
    let desired = resources::desired_children(&ps, &plan, &op.defaults, &external);
    let (changes, monitor) = apply_children(&ps, &ctx, desired, &plan, &deployments).await?;
    let refusal = changes.refusal();

    let last_backup = match ps.spec.backup() {
        Some(_) => ctx
            .api_beside::<CronJob, _>(&*ps)
            .get_opt(&backup_name(&name))
            .await?
            .and_then(|c| c.status)
            .and_then(|s| s.last_successful_time),
        None => None,
    };
    let mut next = observed_status(&ps, &plan, observed, monitor, last_backup, now);
    match (&next.last_backup, ps.spec.backup()) {
        (Some(at), Some(_)) => op.metrics.backed_up(&ps, at.0),
        _ => op.metrics.forget(&ps),
    }
    if let Some(refusal) = &refusal {
        set_not_ready(&mut next.conditions, refusal, ps.meta().generation, now);
    }
    announce(&ps, &ctx, &plan, &changes, &next).await;
    ctx.write_status(&*ps, &next).await?;
    if let Some(refusal) = refusal {
        return Err(refusal);
    }
    Ok(match plan.requeue_after {
        Some(after) if after < ctx.settings().resync => Action::requeue(after),
        _ => ctx.resync(),
    })
}

/// How often a service waiting for its Secret looks again: the Secret is usually on its way
/// (cert-manager issues it), so the wait ends within this of its arrival, not a resync later.
const SECRET_POLL: Duration = Duration::from_secs(5);

/// A Secret the spec names does not exist yet: a wait, not a failure. Nothing is deployed
/// (pods could not start without it), the status says which Secret (phase `Pending` for a
/// service that never ran), one Warning event says so when the wait starts, and the pass is
/// repeated every [`SECRET_POLL`] until the Secret is there.
async fn wait_for_secret(
    ps: &PaymentService,
    ctx: &Ctx,
    missing: FieldError,
    now: Timestamp,
) -> Result<Action> {
    let waiting_already = ps
        .status
        .as_ref()
        .and_then(|s| operator_core::conditions::find(&s.conditions, "Ready"))
        .is_some_and(|c| c.reason == "SecretMissing");
    let status = operator_core::status::not_ready(
        ps.status.as_ref(),
        operator_core::reason!("SecretMissing"),
        missing.to_string(),
        ps.meta().generation,
        Phase::Pending,
        now,
    );
    if !waiting_already {
        ctx.events
            .warning(
                ps,
                operator_core::reason!("SecretMissing"),
                "Wait",
                missing.to_string(),
            )
            .await;
    }
    ctx.write_status(ps, &status).await?;
    Ok(Action::requeue(SECRET_POLL))
}

/// What the pods depend on outside the spec: the TLS Secret's version. A missing Secret is
/// the user's to fix (the pods could not start), returned as a field error.
async fn external_inputs(
    ps: &PaymentService,
    ctx: &Ctx,
) -> Result<std::result::Result<External, FieldError>> {
    let Some(secret) = ps.spec.tls_secret() else {
        return Ok(Ok(External::default()));
    };
    match ctx
        .api_beside::<Secret, _>(ps)
        .get_metadata_opt(secret)
        .await?
    {
        Some(meta) => Ok(Ok(External {
            tls_secret_version: meta.metadata.resource_version,
        })),
        None => Ok(Err(FieldError::new(
            "spec.security.tls.secretName",
            format!(
                "Secret {secret:?} does not exist in namespace {:?} yet; nothing is deployed until it does (create it, type kubernetes.io/tls, or name an existing one)",
                namespace_of(ps)
            ),
        ))),
    }
}

/// The service's Deployments: what the rollout sees, and which of them have `replicas`
/// owned by this operator's apply (from their managed fields).
struct ObservedDeployments {
    states: BTreeMap<String, DeploymentState>,
    replicas_owned: BTreeSet<String>,
}

/// One GET per Deployment the service has (one, or two during a rollout), named by the
/// child cache: a LIST by label would cost the API server a scan of the namespace.
async fn observe_deployments(ps: &PaymentService, ctx: &Ctx) -> Result<ObservedDeployments> {
    let uid = ps.meta().uid.clone().unwrap_or_default();
    let deployments = ctx.api_beside::<Deployment, _>(ps);
    let mut ours = Vec::new();
    for name in ctx.children.of::<Deployment>()?.names(ps).await? {
        if let Some(d) = deployments.get_opt(&name).await?
            && d.owner_references().iter().any(|o| o.uid == uid)
        {
            ours.push(d);
        }
    }
    Ok(ObservedDeployments {
        replicas_owned: ours
            .iter()
            .filter(|d| applies_replicas(d, ctx.identity.manager))
            .map(ResourceExt::name_any)
            .collect(),
        states: ours
            .iter()
            .map(|d| (d.name_any(), deployment_state(d)))
            .collect(),
    })
}

/// What a rollout needs to know about one Deployment.
pub fn deployment_state(d: &Deployment) -> DeploymentState {
    let spec = d.spec.clone().unwrap_or_default();
    let template = spec.template;
    let version = template
        .metadata
        .and_then(|m| m.labels)
        .and_then(|l| l.get("version").cloned());
    let image = template.spec.and_then(|p| {
        p.containers
            .into_iter()
            .find(|c| c.name == resources::deployment::CONTAINER)
            .and_then(|c| c.image)
    });
    let status = d.status.clone().unwrap_or_default();
    DeploymentState {
        revision: version
            .zip(image)
            .map(|(version, image)| Revision { version, image }),
        generation: d.metadata.generation.unwrap_or(0),
        observed_generation: status.observed_generation.unwrap_or(0),
        replicas: spec.replicas.unwrap_or(1),
        updated_replicas: status.updated_replicas.unwrap_or(0),
        available_replicas: status.available_replicas.unwrap_or(0),
        deadline_exceeded: status.conditions.iter().flatten().any(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        }),
    }
}

async fn apply_children(
    ps: &PaymentService,
    ctx: &Ctx,
    desired: DesiredChildren,
    plan: &RolloutPlan,
    observed: &ObservedDeployments,
) -> Result<(Changes, MonitorState)> {
    let mut pass = ctx.children.pass(ps);
    if let Some(sa) = desired.service_account {
        // The account the user names: created when missing, used as it is when it exists.
        pass.apply_with(sa, Foreign::Use).await?;
    }
    // A colour or canary the rollout is still retiring stays until it has switched away.
    for retiring in &plan.retiring {
        pass.keep::<Deployment>(retiring.clone());
    }
    let deployments = ctx.api_beside::<Deployment, _>(ps);
    for d in desired.deployments {
        let name = d.name_any();
        let autoscaled = d.spec.as_ref().is_some_and(|s| s.replicas.is_none());
        if autoscaled
            && observed.replicas_owned.contains(&name)
            && let Some(state) = observed.states.get(&name)
        {
            hand_replicas_to_autoscaler(&deployments, ctx.identity.manager, &name, state.replicas)
                .await?;
        }
        pass.apply(d).await?;
    }
    pass.apply(desired.service).await?;
    pass.apply(desired.network_policy).await?;
    if let Some(hpa) = desired.hpa {
        pass.apply(hpa).await?;
    }
    if let Some(pdb) = desired.pdb {
        pass.apply(pdb).await?;
    }
    if let Some(b) = desired.backup {
        // The claim holds the exports: its kind is never pruned.
        pass.apply(b.volume).await?;
        pass.apply(b.service_account).await?;
        pass.apply(b.role).await?;
        pass.apply(b.role_binding).await?;
        pass.apply(b.cron_job).await?;
    }
    let served = ctx.children.served::<ServiceMonitor>().await?;
    let monitor = match desired.service_monitor {
        Some(sm) if served => {
            pass.apply(sm).await?;
            MonitorState::Applied
        }
        Some(_) => MonitorState::Unavailable,
        None => MonitorState::NotWanted,
    };
    // Everything wanted is in place (the Service has switched) before the rest is pruned.
    Ok((pass.finish().await?, monitor))
}

/// Available replicas of the pods the Service sends traffic to.
fn serving_available(
    ps: &PaymentService,
    plan: &RolloutPlan,
    observed: &BTreeMap<String, DeploymentState>,
) -> i32 {
    let name = ps.name_any();
    let serving: Vec<String> = match plan.serving_color {
        Some(color) if plan.retiring.is_empty() => {
            vec![rollout::Track::Color(color).deployment_name(&name)]
        }
        _ => plan
            .workloads
            .iter()
            .map(|w| w.track.deployment_name(&name))
            .chain(plan.retiring.iter().cloned())
            .collect(),
    };
    serving
        .iter()
        .filter_map(|n| observed.get(n))
        .map(|d| d.available_replicas)
        .sum()
}

/// Status from the plan and what the Deployments report.
pub fn observed_status(
    ps: &PaymentService,
    plan: &RolloutPlan,
    observed: &BTreeMap<String, DeploymentState>,
    monitor: MonitorState,
    last_backup: Option<Time>,
    now: Timestamp,
) -> PaymentServiceStatus {
    let previous = ps.status.clone().unwrap_or_default();
    let generation = ps.meta().generation;
    let available = serving_available(ps, plan, observed);
    let wanted = ps.spec.min_replicas();
    let blocking = plan.blocking_failure(generation.unwrap_or(0));

    let phase = match (&plan.stable, blocking, &plan.rollout) {
        (None, Some(_), _) => Phase::Failed,
        (None, None, _) => Phase::Pending,
        (Some(_), _, Some(_)) => Phase::Progressing,
        (Some(_), Some(_), None) => Phase::Degraded,
        (Some(_), None, None) if available < wanted => Phase::Degraded,
        (Some(_), None, None) => Phase::Running,
    };

    let ready = match (&plan.stable, blocking) {
        (None, Some(f)) => Observed {
            type_: "Ready",
            status: ConditionStatus::False,
            reason: operator_core::reason!("RolloutFailed"),
            message: format!(
                "version {} never became available: {}; fix spec.version or spec.image",
                f.target.version, f.message
            ),
        },
        (None, None) => Observed {
            type_: "Ready",
            status: ConditionStatus::False,
            reason: operator_core::reason!("Pending"),
            message: format!(
                "waiting for version {} to become available",
                ps.spec.version
            ),
        },
        (Some(stable), _) if available >= wanted => Observed {
            type_: "Ready",
            status: ConditionStatus::True,
            reason: operator_core::reason!("ServiceAvailable"),
            message: format!(
                "version {} is serving with {available} available replicas",
                stable.version
            ),
        },
        (Some(stable), _) => Observed {
            type_: "Ready",
            status: ConditionStatus::False,
            reason: operator_core::reason!("ReplicasUnavailable"),
            message: format!(
                "version {}: {available} of {wanted} replicas available",
                stable.version
            ),
        },
    };
    let progressing = match &plan.rollout {
        Some(r) => Observed {
            type_: "Progressing",
            status: ConditionStatus::True,
            reason: match r.strategy {
                StrategyType::RollingUpdate => operator_core::reason!("RollingUpdate"),
                StrategyType::Canary => operator_core::reason!("CanaryInProgress"),
                StrategyType::BlueGreen => operator_core::reason!("PreviewStarting"),
            },
            message: progress_message(ps, r),
        },
        None if blocking.is_some() => Observed {
            type_: "Progressing",
            status: ConditionStatus::False,
            reason: operator_core::reason!("RolledBack"),
            message: "the last rollout failed; see Degraded".into(),
        },
        None => Observed {
            type_: "Progressing",
            status: ConditionStatus::False,
            reason: operator_core::reason!("RolloutComplete"),
            message: "no rollout in progress".into(),
        },
    };
    let degraded = match (blocking, &plan.stable) {
        (Some(f), Some(stable)) => Observed {
            type_: "Degraded",
            status: ConditionStatus::True,
            reason: operator_core::reason!("RolledBack"),
            message: format!(
                "version {} failed ({}) and was rolled back to {}; it is not retried until the spec changes",
                f.target.version, f.message, stable.version
            ),
        },
        (Some(f), None) => Observed {
            type_: "Degraded",
            status: ConditionStatus::True,
            reason: operator_core::reason!("RolloutFailed"),
            message: format!(
                "version {} failed ({}); there is no earlier version to roll back to",
                f.target.version, f.message
            ),
        },
        (None, _) => Observed {
            type_: "Degraded",
            status: ConditionStatus::False,
            reason: operator_core::reason!("AsExpected"),
            message: "no failed rollout".into(),
        },
    };
    let mut conditions = previous.conditions.clone();
    for c in [ready, progressing, degraded] {
        // Reasons here are literals and CamelCase; an error would be a bug caught by tests.
        let _ = set_condition(&mut conditions, c, generation, now);
    }
    let service_monitor = match monitor {
        MonitorState::NotWanted => None,
        MonitorState::Applied => Some(Observed {
            type_: "ServiceMonitor",
            status: ConditionStatus::True,
            reason: operator_core::reason!("Applied"),
            message: "Prometheus scrapes the metrics port through a ServiceMonitor".into(),
        }),
        MonitorState::Unavailable => Some(Observed {
            type_: "ServiceMonitor",
            status: ConditionStatus::False,
            reason: operator_core::reason!("PrometheusOperatorNotInstalled"),
            message: "monitoring.coreos.com/v1 ServiceMonitor is not served by this cluster; scraping relies on the prometheus.io pod annotations until the Prometheus Operator is installed".into(),
        }),
    };
    match service_monitor {
        Some(c) => {
            let _ = set_condition(&mut conditions, c, generation, now);
        }
        None => {
            remove(&mut conditions, "ServiceMonitor");
        }
    }
    PaymentServiceStatus {
        phase: Some(phase),
        available_replicas: Some(available),
        current_version: plan.stable.as_ref().map(|s| s.version.clone()),
        current_image: plan.stable.as_ref().map(|s| s.image.clone()),
        last_backup: last_backup.or(previous.last_backup),
        conditions,
        observed_generation: generation,
        rollout: plan.rollout.clone(),
        failed_rollout: plan.failed.clone(),
        active_color: plan.active_color,
        cleanup: previous.cleanup.clone(),
    }
}

fn progress_message(ps: &PaymentService, r: &crate::crd::Rollout) -> String {
    let steps = ps.spec.canary_steps();
    match (r.strategy, r.step) {
        (StrategyType::Canary, Some(step)) => {
            let step = usize::try_from(step).unwrap_or(0);
            match steps.get(step) {
                Some(s) => format!(
                    "canary of {} at step {} of {} ({}%)",
                    r.target.version,
                    step + 1,
                    steps.len(),
                    s.set_weight
                ),
                None => format!("promoting {} to the stable Deployment", r.target.version),
            }
        }
        (StrategyType::BlueGreen, _) => format!(
            "bringing up {} as the idle colour; traffic switches once it is available",
            r.target.version
        ),
        _ => format!("rolling out {}", r.target.version),
    }
}

/// Events a human wants in `kubectl describe`.
async fn announce(
    ps: &PaymentService,
    ctx: &Ctx,
    plan: &RolloutPlan,
    changes: &Changes,
    next: &PaymentServiceStatus,
) {
    let events = &ctx.events;
    events.changes(ps, changes).await;
    let namespace = namespace_of(ps);
    let strategy = ps.spec.strategy();
    for t in &plan.transitions {
        let ended = match t {
            Transition::Completed(_) => Some(RolloutResult::Completed),
            Transition::RolledBack { .. } => Some(RolloutResult::RolledBack),
            Transition::FirstVersionFailed { .. } => Some(RolloutResult::Failed),
            _ => None,
        };
        if let Some(result) = ended {
            ctx.operator
                .metrics
                .rollout_ended(namespace, strategy, result);
        }
        match t {
            Transition::Started { target, strategy } => {
                let note = match plan.stable.as_ref() {
                    Some(stable) if stable != target => format!(
                        "rolling out {target} with {strategy:?}; {} keeps serving until it is available",
                        stable.version
                    ),
                    _ => format!("rolling out {target}"),
                };
                events
                    .normal(
                        ps,
                        operator_core::reason!("RolloutStarted"),
                        "Rollout",
                        note,
                    )
                    .await;
            }
            Transition::CanaryStep {
                step,
                steps,
                weight,
            } => {
                let note =
                    format!("canary step {step} of {steps}: {weight}% of pods run the new version");
                events
                    .normal(ps, operator_core::reason!("CanaryStep"), "Rollout", note)
                    .await;
            }
            Transition::Promoting(target) => {
                let note = format!(
                    "every canary step passed: promoting {} to the stable Deployment",
                    target.version
                );
                events
                    .normal(
                        ps,
                        operator_core::reason!("CanaryPromoting"),
                        "Rollout",
                        note,
                    )
                    .await;
            }
            Transition::Switched { color, target } => {
                let note = format!(
                    "the Service now sends traffic to {} ({})",
                    color.as_str(),
                    target.version
                );
                events
                    .normal(
                        ps,
                        operator_core::reason!("TrafficSwitched"),
                        "Rollout",
                        note,
                    )
                    .await;
            }
            Transition::Completed(target) => {
                let note = format!("version {} is available and serving", target.version);
                events
                    .normal(
                        ps,
                        operator_core::reason!("RolloutComplete"),
                        "Rollout",
                        note,
                    )
                    .await;
            }
            Transition::RolledBack { failed, to, why } => {
                let note = format!(
                    "version {} failed: {why}; rolled back to {}. It is not retried until the spec changes",
                    failed.version, to.version
                );
                events
                    .warning(ps, operator_core::reason!("RolledBack"), "Rollback", note)
                    .await;
            }
            Transition::FirstVersionFailed { failed, why } => {
                let note = format!(
                    "version {} failed: {why}; there is no earlier version to roll back to",
                    failed.version
                );
                events
                    .warning(ps, operator_core::reason!("RolloutFailed"), "Rollout", note)
                    .await;
            }
        }
    }
    let previous = ps.status.clone().unwrap_or_default();
    let monitor_missing = |s: &PaymentServiceStatus| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "ServiceMonitor" && c.status == "False")
    };
    if monitor_missing(next) && !monitor_missing(&previous) {
        events
            .normal(
                ps,
                operator_core::reason!("ServiceMonitorSkipped"),
                "Apply",
                "the Prometheus Operator is not installed: no ServiceMonitor; pods keep their prometheus.io scrape annotations",
            )
            .await;
    }
    if next.last_backup.is_some() && next.last_backup != previous.last_backup {
        let note = format!(
            "backup exported to PersistentVolumeClaim {}",
            backup_volume_name(&ps.name_any())
        );
        events
            .normal(
                ps,
                operator_core::reason!("BackupSucceeded"),
                "Backup",
                note,
            )
            .await;
    }
}

/// Stops every Deployment of the service and keeps the backup claim out of the garbage
/// collector's reach: the Deployments deleted, and whether a claim was kept.
async fn stop_and_keep_backups(ps: &PaymentService, ctx: &Ctx) -> Result<(Vec<String>, bool)> {
    let deleted = ctx
        .children
        .of::<Deployment>()?
        .prune(ps, &BTreeSet::new())
        .await?;
    let claims = ctx.api_beside::<PersistentVolumeClaim, _>(ps);
    let claim = backup_volume_name(&ps.name_any());
    let kept = match claims.get_metadata_opt(&claim).await? {
        Some(meta)
            if meta
                .owner_references()
                .iter()
                .any(|o| Some(&o.uid) == ps.meta().uid.as_ref()) =>
        {
            let patch = json!({"metadata": {"ownerReferences": null}});
            claims
                .patch(&claim, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            true
        }
        Some(_) => true,
        None => false,
    };
    Ok((deleted, kept))
}

/// Before the PaymentService goes: stop every Deployment of it (a canary or idle colour
/// included), keep the backup claim (its owner reference is removed so the garbage collector
/// leaves the exports), record what was done, and forget what was applied. When the whole
/// namespace goes, its children go with it: only the record is kept.
async fn cleanup(ps: Arc<PaymentService>, deletion: Deletion, ctx: Ctx) -> Result<Cleanup> {
    let op = &ctx.operator;
    let name = ps.name_any();
    // A pass that finds the record already written (a cached copy from before the release,
    // or a restart) has nothing left to do but release: the work and its event happened.
    let status = ps.status.clone().unwrap_or_default();
    if status.cleanup.is_none() {
        let claim = backup_volume_name(&name);
        let (deleted, kept) = match deletion {
            Deletion::Resource => stop_and_keep_backups(&ps, &ctx).await?,
            Deletion::Namespace => (Vec::new(), false),
        };
        // The record of what deletion did (and where the backups are): kept in status and the
        // operator's log, which a namespace being deleted still accepts, then announced.
        let report = CleanupReport {
            deleted_deployments: deleted,
            kept_backup_claim: kept.then(|| claim.clone()),
            completed_at: Time((op.now)()),
        };
        let next = PaymentServiceStatus {
            cleanup: Some(report.clone()),
            ..status
        };
        ctx.write_status(&*ps, &next).await?;
        let mut note = format!(
            "deleted Deployments [{}]",
            report.deleted_deployments.join(", ")
        );
        if let Some(claim) = &report.kept_backup_claim {
            note.push_str(&format!(
                "; kept PersistentVolumeClaim {claim} with the backups (delete it by hand when they are no longer needed)"
            ));
        }
        ctx.events
            .record(&*ps, operator_core::reason!("CleanupDone"), "Delete", note)
            .await;
    }

    op.metrics.forget(&ps);
    ctx.forget(&*ps);
    Ok(Cleanup::Done)
}
