//! Observe: what the pass reads before it builds anything — the Secrets the spec names,
//! the service's Deployments as the rollout sees them (with, while a rollout is in progress,
//! whether the new version's pods crash-loop), and a canary's analysis metrics when due.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Resource, ResourceExt};
use operator_core::autoscaling::{HeldReplicas, held_replicas};
use operator_core::prometheus::MetricsQuery;
use operator_core::{FieldError, Result, namespace_of};

use super::Ctx;
use crate::crd::{PaymentService, Revision, StrategyType};
use crate::resources::{self, External};
use crate::rollout::analysis::{self, Measurement};
use crate::rollout::{DeploymentState, Track};

/// What the pods depend on outside the spec: the TLS Secret's version. A missing Secret is
/// the user's to fix (the pods could not start), returned as a field error.
pub(super) async fn external_inputs(
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

/// The service's Deployments: what the rollout sees, and the `replicas` this operator's
/// apply holds on them (from their managed fields).
pub(super) struct ObservedDeployments {
    pub(super) states: BTreeMap<String, DeploymentState>,
    pub(super) replicas_held: BTreeMap<String, HeldReplicas>,
}

/// One GET per Deployment the service has (one, or two during a rollout), named by the
/// child cache: a LIST by label would cost the API server a scan of the namespace.
pub(super) async fn observe_deployments(
    ps: &PaymentService,
    ctx: &Ctx,
) -> Result<ObservedDeployments> {
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
    let crash_loops = match ps.status.as_ref().and_then(|s| s.rollout.as_ref()) {
        Some(_) => crash_looping_pods(ps, ctx, &ours).await?,
        None => Vec::new(),
    };
    let mut states = BTreeMap::new();
    let mut replicas_held = BTreeMap::new();
    for d in &ours {
        let mut state = deployment_state(d);
        state.crash_loop = crash_loops
            .iter()
            .find(|(revision, _)| state.revision.as_ref() == Some(revision))
            .map(|(_, why)| why.clone());
        if let Some(held) = held_replicas(d, ctx.identity.manager, state.replicas) {
            replicas_held.insert(d.name_any(), held);
        }
        states.insert(d.name_any(), state);
    }
    Ok(ObservedDeployments {
        states,
        replicas_held,
    })
}

/// The service's pods that crash-loop, with the revision each runs: one LIST by the
/// service's `app` label, made only while a rollout is in progress (the reconcile looks again
/// every [`crate::rollout::CRASH_CHECK_INTERVAL`] meanwhile). A label is not ownership: a
/// crash-looping pod counts only when its ReplicaSet is controlled by one of the service's
/// own Deployments (one GET per ReplicaSet, and only when a pod crash-loops), so another
/// team's pods that share the labels never roll this service back.
async fn crash_looping_pods(
    ps: &PaymentService,
    ctx: &Ctx,
    ours: &[Deployment],
) -> Result<Vec<(Revision, String)>> {
    let selector = resources::selector(ps)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = ctx
        .api_beside::<Pod, _>(ps)
        .list(&ListParams::default().labels(&selector))
        .await?;
    let looping: Vec<_> = pods
        .items
        .iter()
        .filter_map(|pod| Some((replica_set_of(pod)?, crash_loop(pod)?)))
        .collect();
    let deployments: BTreeSet<&str> = ours
        .iter()
        .filter_map(|d| d.meta().uid.as_deref())
        .collect();
    let replica_sets = ctx.api_beside::<ReplicaSet, _>(ps);
    let mut owned = BTreeSet::new();
    for (name, uid) in looping.iter().map(|(set, _)| set).collect::<BTreeSet<_>>() {
        let Some(set) = replica_sets.get_metadata_opt(name).await? else {
            continue;
        };
        let controlled_by_ours = set
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && deployments.contains(o.uid.as_str()));
        if set.metadata.uid.as_deref() == Some(uid) && controlled_by_ours {
            owned.insert(uid.clone());
        }
    }
    Ok(looping
        .into_iter()
        .filter(|((_, uid), _)| owned.contains(uid))
        .map(|(_, found)| found)
        .collect())
}

/// The ReplicaSet that controls `pod`: its name and uid.
fn replica_set_of(pod: &Pod) -> Option<(String, String)> {
    pod.owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "ReplicaSet")
        .map(|o| (o.name.clone(), o.uid.clone()))
}

/// Restarts of one container that make a crash loop even while it is briefly running.
const CRASH_LOOP_RESTARTS: i32 = 3;

/// Whether the service container of `pod` crash-loops (waiting in `CrashLoopBackOff`, or
/// restarted [`CRASH_LOOP_RESTARTS`] times), with the revision the pod runs and what a human
/// is told.
pub fn crash_loop(pod: &Pod) -> Option<(Revision, String)> {
    let spec = pod.spec.as_ref()?;
    let image = spec
        .containers
        .iter()
        .find(|c| c.name == resources::deployment::CONTAINER)?
        .image
        .clone()?;
    let version = pod.labels().get("version")?.clone();
    let status = pod
        .status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == resources::deployment::CONTAINER)?;
    let waiting = status.state.as_ref().and_then(|s| s.waiting.as_ref());
    let backing_off = waiting.and_then(|w| w.reason.as_deref()) == Some("CrashLoopBackOff");
    if !backing_off && status.restart_count < CRASH_LOOP_RESTARTS {
        return None;
    }
    let last_exit = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| match t.reason.as_deref() {
            Some(reason) => format!(", last exit code {} ({reason})", t.exit_code),
            None => format!(", last exit code {}", t.exit_code),
        })
        .unwrap_or_default();
    let state = if backing_off {
        "in CrashLoopBackOff"
    } else {
        "crash-looping"
    };
    let why = format!(
        "pod {} crash-loops: container {} is {state} after {} restarts{last_exit}",
        pod.name_any(),
        status.name,
        status.restart_count
    );
    Some((Revision { version, image }, why))
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
        crash_loop: None,
    }
}

/// The canary's analysis metrics that are due, read from Prometheus: only while a canary
/// step is in progress and its canary Deployment is available (nothing waits on an answer
/// otherwise), each at most once per its `interval`.
pub(super) async fn measure_canary(
    ps: &PaymentService,
    prometheus: Option<&dyn MetricsQuery>,
    deployments: &BTreeMap<String, DeploymentState>,
    now: Timestamp,
) -> Vec<Measurement> {
    let metrics = ps.spec.analysis_metrics();
    let Some(rollout) = ps.status.as_ref().and_then(|s| s.rollout.as_ref()) else {
        return Vec::new();
    };
    let stepping = usize::try_from(rollout.step.unwrap_or(0))
        .is_ok_and(|step| step < ps.spec.canary_steps().len());
    let name = ps.name_any();
    let canary_available = deployments
        .get(&Track::Canary.deployment_name(&name))
        .is_some_and(|d| d.is_complete(&rollout.target));
    if metrics.is_empty()
        || rollout.strategy != StrategyType::Canary
        || !stepping
        || !canary_available
    {
        return Vec::new();
    }
    let recorded = rollout.analysis.as_deref().unwrap_or_default();
    let mut measurements = Vec::new();
    for metric in metrics.iter().filter(|m| analysis::due(m, recorded, now)) {
        let reading = match prometheus {
            None => Err("Prometheus is not configured: set operator.prometheus.url in the operator's config".to_string()),
            Some(prometheus) => {
                let promql = analysis::query(metric, namespace_of(ps), &name, &rollout.target);
                match prometheus.query(&promql).await {
                    Ok(samples) => samples
                        .first()
                        .map(|s| s.value)
                        .ok_or_else(|| format!("the query returned no series: {promql}")),
                    Err(error) => Err(error.to_string()),
                }
            }
        };
        measurements.push(Measurement {
            metric: metric.name.clone(),
            reading,
        });
    }
    measurements
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A pod of `pay` running version 1.6.0, its service container in `state` after
    /// `restarts` restarts, beside a sidecar that crash-loops on its own.
    fn pod(state: serde_json::Value, restarts: i32) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "pay-7f9c-x", "labels": {"app": "pay", "version": "1.6.0"}},
            "spec": {"containers": [
                {"name": "istio-proxy", "image": "istio/proxyv2"},
                {"name": resources::deployment::CONTAINER, "image": "pay:1.6.0"},
            ]},
            "status": {"containerStatuses": [
                {"name": "istio-proxy", "image": "istio/proxyv2", "imageID": "", "ready": false,
                 "restartCount": 9, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                {"name": resources::deployment::CONTAINER, "image": "pay:1.6.0", "imageID": "",
                 "ready": false, "restartCount": restarts, "state": state,
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}},
            ]},
        }))
        .unwrap_or_default()
    }

    fn revision() -> Revision {
        Revision {
            version: "1.6.0".into(),
            image: "pay:1.6.0".into(),
        }
    }

    #[test]
    fn a_service_container_backing_off_is_a_crash_loop_of_its_revision() {
        let found = crash_loop(&pod(json!({"waiting": {"reason": "CrashLoopBackOff"}}), 2));
        assert_eq!(
            found,
            Some((
                revision(),
                "pod pay-7f9c-x crash-loops: container payment-service is in CrashLoopBackOff after 2 restarts, last exit code 1 (Error)".into()
            ))
        );
    }

    #[test]
    fn three_restarts_are_a_crash_loop_even_while_it_runs_between_them() {
        let found = crash_loop(&pod(json!({"running": {}}), 3));
        assert!(found.is_some_and(|(_, why)| why.contains("is crash-looping after 3 restarts")));
    }

    #[test]
    fn a_restart_or_two_or_a_sidecar_crash_is_not() {
        assert_eq!(crash_loop(&pod(json!({"running": {}}), 2)), None);
        let mut unlabelled = pod(json!({"waiting": {"reason": "CrashLoopBackOff"}}), 5);
        unlabelled.metadata.labels = None;
        assert_eq!(crash_loop(&unlabelled), None, "not a pod of a version");
    }
}
