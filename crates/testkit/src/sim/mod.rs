//! Simulated workload controllers, switched on by tests that need them: what the Deployment
//! controller and kubelets, the HorizontalPodAutoscaler, and the Job and CronJob
//! controllers would write.
//! Operators watch these effects (ready replicas, a failed rollout, a finished backup Job),
//! so tests can steer them: mark pods unready, stall a rollout, fail a Job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

mod batch;

use crate::managed;
use crate::registry::ResourceType;
use crate::shared::{Shared, lock};

/// The manager name the simulated controllers write status under.
const MANAGER: &str = "kube-controller-manager";
/// How often the simulation looks at every workload (progress deadlines, schedules);
/// changes themselves are handled as they happen, object by object.
const TICK: Duration = Duration::from_secs(1);

/// What the next Jobs do once they start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JobOutcome {
    /// Completes successfully at once.
    #[default]
    Succeed,
    /// Fails (BackoffLimitExceeded).
    Fail,
    /// Stays running until the test decides.
    Hold,
}

#[derive(Clone, Debug, Default)]
struct DeploymentControl {
    /// At most this many pods become ready.
    ready_limit: Option<i64>,
    /// The generation whose rollout never becomes available (new pods never ready).
    stalled: bool,
    /// Pods that keep running after a scale-down (finishing in-flight work past their grace
    /// period): `status.replicas` stays at least this.
    lingering: i64,
}

#[derive(Debug, Default)]
struct SimState {
    deployments: HashMap<(String, String), DeploymentControl>,
    /// When the rollout of each Deployment's current generation started.
    rollouts: HashMap<(String, String), (i64, tokio::time::Instant)>,
    jobs: HashMap<(String, String), JobOutcome>,
    default_job_outcome: JobOutcome,
    /// Termination messages of a Job's pods, by Job, and of every other Job's.
    messages: HashMap<(String, String), Vec<String>>,
    default_messages: Vec<String>,
    /// Which HPA scales which Deployment: `(namespace, deployment)` → HPA name.
    hpa_targets: HashMap<(String, String), String>,
    /// The CPU utilisation (percent of requests) each HPA reports, as a test sets it.
    hpa_cpu: HashMap<(String, String), i64>,
}

/// Steers the simulated controllers; dropping it does not stop them (they stop with the
/// runtime). Clones share state.
#[derive(Clone, Debug)]
pub struct Workloads {
    shared: Arc<Shared>,
    state: Arc<Mutex<SimState>>,
}

fn key(namespace: &str, name: &str) -> (String, String) {
    (namespace.to_string(), name.to_string())
}

fn now() -> String {
    managed::now()
}

impl Workloads {
    pub(crate) fn start(shared: Arc<Shared>) -> Self {
        let workloads = Self {
            shared,
            state: Arc::default(),
        };
        let runner = workloads.clone();
        tokio::spawn(async move { runner.run().await });
        workloads
    }

    /// Lets at most `ready` pods of a Deployment become ready (`None`: all of them).
    pub fn set_ready_limit(&self, namespace: &str, name: &str, ready: Option<i64>) {
        lock(&self.state)
            .deployments
            .entry(key(namespace, name))
            .or_default()
            .ready_limit = ready;
        self.reconcile_all();
    }

    /// Makes a Deployment's rollouts stall: new pods never become ready, so after
    /// `progressDeadlineSeconds` the Deployment reports `ProgressDeadlineExceeded`.
    pub fn stall_rollouts(&self, namespace: &str, name: &str, stalled: bool) {
        lock(&self.state)
            .deployments
            .entry(key(namespace, name))
            .or_default()
            .stalled = stalled;
        self.reconcile_all();
    }

    /// Has an HPA report `percent` average CPU utilisation in its status (`None`: no metrics),
    /// as the HPA controller does from the metrics server.
    pub fn set_cpu_utilization(&self, namespace: &str, hpa: &str, percent: Option<i64>) {
        {
            let mut state = lock(&self.state);
            match percent {
                Some(p) => state.hpa_cpu.insert(key(namespace, hpa), p),
                None => state.hpa_cpu.remove(&key(namespace, hpa)),
            };
        }
        self.autoscale_one(namespace, hpa);
    }

    /// Keeps `pods` pods of a Deployment running whatever its replicas (0: none linger).
    pub fn linger_pods(&self, namespace: &str, name: &str, pods: i64) {
        lock(&self.state)
            .deployments
            .entry(key(namespace, name))
            .or_default()
            .lingering = pods;
        self.reconcile_all();
    }

    async fn run(self) {
        let mut changes = lock(&self.shared.store).subscribe();
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(c) => self.on_change(&c),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.reconcile_all(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => self.reconcile_all(),
            }
        }
    }

    /// Reacts to one change, touching only the objects it concerns.
    fn on_change(&self, change: &crate::store::Change) {
        if change.kind == crate::store::EventType::Deleted {
            return;
        }
        let ns = change.namespace.as_str();
        let name = change.object["metadata"]["name"]
            .as_str()
            .unwrap_or_default();
        match change.plural.as_str() {
            "deployments" => {
                let hpa = lock(&self.state).hpa_targets.get(&key(ns, name)).cloned();
                if let Some(hpa) = hpa {
                    self.autoscale_one(ns, &hpa);
                }
                self.reconcile_one("apps", "deployments", ns, name);
            }
            "horizontalpodautoscalers" => {
                let target = &change.object["spec"]["scaleTargetRef"];
                if target["kind"] == "Deployment"
                    && let Some(deployment) = target["name"].as_str()
                {
                    lock(&self.state)
                        .hpa_targets
                        .insert(key(ns, deployment), name.to_string());
                }
                self.autoscale_one(ns, name);
            }
            "jobs" => {
                self.reconcile_one("batch", "jobs", ns, name);
                let owners = change.object["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for owner in owners.iter().filter(|o| o["kind"] == "CronJob") {
                    if let Some(cronjob) = owner["name"].as_str() {
                        self.reconcile_one("batch", "cronjobs", ns, cronjob);
                    }
                }
            }
            "cronjobs" => self.reconcile_one("batch", "cronjobs", ns, name),
            _ => {}
        }
    }

    fn reconcile_one(&self, group: &str, plural: &str, ns: &str, name: &str) {
        let found = {
            let store = lock(&self.shared.store);
            store
                .resolve(group, "v1", plural)
                .and_then(|rt| store.get(&rt, ns, name).ok().map(|obj| (rt, obj)))
        };
        if let Some((rt, obj)) = found {
            self.reconcile_object(&rt, &obj);
        }
    }

    fn reconcile_object(&self, rt: &ResourceType, obj: &Value) {
        let status = match rt.plural.as_str() {
            "deployments" => Some(self.deployment_status(obj)),
            "jobs" => self.job_status(obj),
            "cronjobs" => {
                self.schedule(obj);
                Some(self.cronjob_status(obj))
            }
            _ => None,
        };
        if let Some(status) = status {
            self.write_status(rt, obj, status);
        }
    }

    fn reconcile_all(&self) {
        self.autoscale();
        for (rt, objects) in self.workloads() {
            for obj in objects {
                self.reconcile_object(&rt, &obj);
            }
        }
    }

    fn workloads(&self) -> Vec<(ResourceType, Vec<Value>)> {
        let store = lock(&self.shared.store);
        [
            ("apps", "deployments"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
        ]
        .iter()
        .filter_map(|(group, plural)| {
            let rt = store.resolve(group, "v1", plural)?;
            let (items, _) = store.list(&rt, None, &Default::default()).ok()?;
            Some((rt, items))
        })
        .collect()
    }

    /// What the HPA controller does without metrics: keeps its target's replicas within
    /// `[minReplicas, maxReplicas]` (through the main resource, as the scale subresource
    /// would), and reports current and desired replicas.
    fn autoscale(&self) {
        let hpas: Vec<(String, String)> = {
            let store = lock(&self.shared.store);
            let Some(rt) = store.resolve("autoscaling", "v2", "horizontalpodautoscalers") else {
                return;
            };
            let Ok((items, _)) = store.list(&rt, None, &Default::default()) else {
                return;
            };
            items
                .iter()
                .map(|h| {
                    let field = |f: &str| h["metadata"][f].as_str().unwrap_or_default().to_string();
                    (field("namespace"), field("name"))
                })
                .collect()
        };
        for (ns, name) in hpas {
            self.autoscale_one(&ns, &name);
        }
    }

    /// One HPA: keeps its target Deployment's replicas within bounds, reports replicas.
    fn autoscale_one(&self, ns: &str, hpa_name: &str) {
        let mut store = lock(&self.shared.store);
        let (Some(hpas), Some(deployments)) = (
            store.resolve("autoscaling", "v2", "horizontalpodautoscalers"),
            store.resolve("apps", "v1", "deployments"),
        ) else {
            return;
        };
        let Ok(hpa) = store.get(&hpas, ns, hpa_name) else {
            return;
        };
        let target = &hpa["spec"]["scaleTargetRef"];
        if target["kind"] != "Deployment" {
            return;
        }
        let name = target["name"].as_str().unwrap_or_default().to_string();
        let Ok(mut deployment) = store.get(&deployments, ns, &name) else {
            return;
        };
        let current = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
        let min = hpa["spec"]["minReplicas"].as_i64().unwrap_or(1);
        let max = hpa["spec"]["maxReplicas"]
            .as_i64()
            .unwrap_or(current)
            .max(min);
        let desired = current.clamp(min, max);
        if desired != current {
            deployment["spec"]["replicas"] = json!(desired);
            if let Err(error) = store.update(&deployments, ns, &name, deployment, None, MANAGER) {
                tracing::debug!(%error, "simulated autoscaler write lost a race");
            }
        }
        let mut status = json!({"currentReplicas": current, "desiredReplicas": desired});
        if let Some(cpu) = lock(&self.state).hpa_cpu.get(&key(ns, hpa_name)) {
            status["currentMetrics"] = json!([{"type": "Resource", "resource": {
                "name": "cpu", "current": {"averageUtilization": cpu}
            }}]);
        }
        if hpa["status"] != status {
            let mut body = hpa.clone();
            body["status"] = status;
            if let Err(error) = store.update(&hpas, ns, hpa_name, body, Some("status"), MANAGER) {
                tracing::debug!(%error, "simulated autoscaler status write lost a race");
            }
        }
    }

    fn write_status(&self, rt: &ResourceType, obj: &Value, mut status: Value) {
        // Keep condition transition times when the status did not flip.
        if let (Some(new), Some(old)) = (
            status["conditions"].as_array_mut(),
            obj["status"]["conditions"].as_array(),
        ) {
            for c in new.iter_mut() {
                if let Some(prev) = old
                    .iter()
                    .find(|o| o["type"] == c["type"] && o["status"] == c["status"])
                {
                    c["lastTransitionTime"] = prev["lastTransitionTime"].clone();
                    c["lastUpdateTime"] = prev["lastUpdateTime"].clone();
                }
            }
        }
        if obj["status"] == status {
            return;
        }
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let mut body = obj.clone();
        body["status"] = status;
        let mut store = lock(&self.shared.store);
        if let Err(error) = store.update(rt, ns, name, body, Some("status"), MANAGER) {
            tracing::debug!(%error, name, "simulated status write lost a race; retried next tick");
        }
    }

    fn deployment_status(&self, d: &Value) -> Value {
        let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
        let wanted = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let deadline =
            Duration::from_secs(d["spec"]["progressDeadlineSeconds"].as_u64().unwrap_or(600));
        let mut state = lock(&self.state);
        let control = state
            .deployments
            .get(&key(ns, name))
            .cloned()
            .unwrap_or_default();
        let started = match state.rollouts.get(&key(ns, name)) {
            Some((g, at)) if *g == generation => *at,
            _ => {
                let at = tokio::time::Instant::now();
                state.rollouts.insert(key(ns, name), (generation, at));
                at
            }
        };
        drop(state);
        let replicas = wanted.max(control.lingering);
        let ready = control
            .ready_limit
            .map_or(replicas, |l| l.clamp(0, replicas));
        let time = now();
        let condition = |type_: &str, status: bool, reason: &str, message: String| {
            json!({"type": type_, "status": if status { "True" } else { "False" }, "reason": reason,
                   "message": message, "lastTransitionTime": time, "lastUpdateTime": time})
        };
        let (updated, progressing) = if control.stalled {
            let exceeded = started.elapsed() >= deadline;
            let progressing = if exceeded {
                condition(
                    "Progressing",
                    false,
                    "ProgressDeadlineExceeded",
                    format!("ReplicaSet of \"{name}\" has timed out progressing."),
                )
            } else {
                condition(
                    "Progressing",
                    true,
                    "ReplicaSetUpdated",
                    format!("ReplicaSet of \"{name}\" is progressing."),
                )
            };
            (0, progressing)
        } else {
            (
                replicas,
                condition(
                    "Progressing",
                    true,
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet of \"{name}\" has successfully progressed."),
                ),
            )
        };
        let available = if ready >= replicas {
            condition(
                "Available",
                true,
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
            )
        } else {
            condition(
                "Available",
                false,
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
            )
        };
        let mut status = json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [available, progressing],
        });
        if ready < replicas {
            status["unavailableReplicas"] = json!(replicas - ready);
        }
        status
    }
}
