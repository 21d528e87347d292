//! The Job and CronJob controllers and the kubelet's part for Job pods, as the stand-in
//! kubelet of `../shared/realcp` plays them, so a test here and an e2e run there see the
//! same thing:
//!
//! - a Job runs `completions` pods (an Indexed Job numbers them: the completion-index
//!   annotation and `JOB_COMPLETION_INDEX`); they finish at once, Succeeded, or Failed when the
//!   image contains "fail" (unless the test decided the Job's outcome);
//! - a finished container's termination message is the pod annotation
//!   `sim/termination-message`, or the container env `SIM_TERMINATION_MESSAGE`, or what the
//!   test set for the Job or for every Job;
//! - a CronJob starts a Job when its schedule comes due, unless it is suspended, or its
//!   `concurrencyPolicy` is `Forbid` and a Job of it still runs (`Replace` deletes that Job).

use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::{JobOutcome, MANAGER, Workloads, key, now};
use crate::shared::lock;

/// The annotation an Indexed Job's pods carry their index in.
const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

fn finished(job: &Value) -> bool {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
}

impl Workloads {
    /// What Jobs created from now on do.
    pub fn set_default_job_outcome(&self, outcome: JobOutcome) {
        lock(&self.state).default_job_outcome = outcome;
    }

    /// Decides one Job (created or to be created) — e.g. fail a held backup Job.
    pub fn set_job_outcome(&self, namespace: &str, name: &str, outcome: JobOutcome) {
        lock(&self.state).jobs.insert(key(namespace, name), outcome);
        self.reconcile_all();
    }

    /// The termination messages of every Job's pods from now on: pod `i` reports
    /// `messages[i % len]`.
    pub fn set_default_termination_messages(&self, messages: Vec<String>) {
        lock(&self.state).default_messages = messages;
    }

    /// The termination messages of one Job's pods (created or to be created).
    pub fn set_job_termination_messages(&self, namespace: &str, name: &str, messages: Vec<String>) {
        lock(&self.state)
            .messages
            .insert(key(namespace, name), messages);
        self.reconcile_all();
    }

    /// Creates a Job from a CronJob now, as `kubectl create job --from=cronjob/NAME` does.
    pub fn trigger_cronjob(&self, namespace: &str, name: &str) -> Option<String> {
        let store = lock(&self.shared.store);
        let rt = store.resolve("batch", "v1", "cronjobs")?;
        let cronjob = store.get(&rt, namespace, name).ok()?;
        drop(store);
        self.spawn_job(&cronjob, Timestamp::now())
    }

    fn outcome(&self, job: &Value) -> JobOutcome {
        let ns = job["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = job["metadata"]["name"].as_str().unwrap_or_default();
        let state = lock(&self.state);
        if let Some(outcome) = state.jobs.get(&key(ns, name)) {
            return *outcome;
        }
        let images = job["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["image"].as_str())
            .collect::<Vec<_>>()
            .join(" ");
        if images.contains("fail") {
            JobOutcome::Fail
        } else {
            state.default_job_outcome
        }
    }

    pub(super) fn job_status(&self, job: &Value) -> Option<Value> {
        if finished(job) {
            return None;
        }
        let outcome = self.outcome(job);
        let pods = self.run_pods(job, outcome);
        let start = job["status"]["startTime"]
            .as_str()
            .map_or_else(now, String::from);
        let time = now();
        Some(match outcome {
            JobOutcome::Hold => json!({"startTime": start, "active": pods}),
            JobOutcome::Succeed => json!({
                "startTime": start, "completionTime": time, "succeeded": pods,
                "conditions": [{"type": "Complete", "status": "True", "lastProbeTime": time, "lastTransitionTime": time}]
            }),
            JobOutcome::Fail => json!({
                "startTime": start, "failed": pods,
                "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                "message": "Job has reached the specified backoff limit", "lastProbeTime": time, "lastTransitionTime": time}]
            }),
        })
    }

    /// Creates the Job's pods (once) and moves them to where `outcome` puts them: running,
    /// or terminated with their termination message. Returns how many there are.
    fn run_pods(&self, job: &Value, outcome: JobOutcome) -> i64 {
        let ns = job["metadata"]["namespace"].as_str().unwrap_or_default();
        let job_name = job["metadata"]["name"].as_str().unwrap_or_default();
        let count = job["spec"]["completions"]
            .as_i64()
            .or_else(|| job["spec"]["parallelism"].as_i64())
            .unwrap_or(1)
            .clamp(1, 1000);
        let indexed = job["spec"]["completionMode"] == "Indexed";
        let (job_messages, default_messages) = {
            let state = lock(&self.state);
            (
                state.messages.get(&key(ns, job_name)).cloned(),
                state.default_messages.clone(),
            )
        };
        let mut store = lock(&self.shared.store);
        let Some(pods) = store.resolve("", "v1", "pods") else {
            return count;
        };
        for i in 0..count {
            let name = format!("{job_name}-{i}");
            let pod = match store.get(&pods, ns, &name) {
                Ok(pod) => pod,
                Err(_) => {
                    let template = &job["spec"]["template"];
                    let mut labels = template["metadata"]["labels"].clone();
                    if !labels.is_object() {
                        labels = json!({});
                    }
                    labels["job-name"] = json!(job_name);
                    labels["controller-uid"] = job["metadata"]["uid"].clone();
                    let mut annotations = template["metadata"]["annotations"].clone();
                    if !annotations.is_object() {
                        annotations = json!({});
                    }
                    let mut spec = template["spec"].clone();
                    if indexed {
                        annotations[COMPLETION_INDEX] = json!(i.to_string());
                        for c in spec["containers"].as_array_mut().into_iter().flatten() {
                            let env = c["env"].as_array().cloned().unwrap_or_default();
                            let mut env: Vec<Value> = env;
                            env.push(
                                json!({"name": "JOB_COMPLETION_INDEX", "value": i.to_string()}),
                            );
                            c["env"] = Value::Array(env);
                        }
                    }
                    let pod = json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {
                            "name": name, "labels": labels, "annotations": annotations,
                            "ownerReferences": [{
                                "apiVersion": "batch/v1", "kind": "Job", "name": job_name,
                                "uid": job["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true
                            }]
                        },
                        "spec": spec,
                    });
                    match store.create(&pods, ns, pod, MANAGER) {
                        Ok(written) => written.object,
                        Err(error) => {
                            tracing::debug!(%error, name, "simulated Job pod");
                            continue;
                        }
                    }
                }
            };
            let message = termination_message(&pod)
                .or_else(|| pick(job_messages.as_deref(), i))
                .or_else(|| pick(Some(&default_messages), i))
                .unwrap_or_default();
            let status = pod_status(&pod, outcome, &message);
            if pod["status"] != status {
                let mut body = pod.clone();
                body["status"] = status;
                if let Err(error) = store.update(&pods, ns, &name, body, Some("status"), MANAGER) {
                    tracing::debug!(%error, name, "simulated Job pod status");
                }
            }
        }
        count
    }

    /// Creates a Job when the CronJob's schedule has come due since it last ran, as its
    /// `suspend` and `concurrencyPolicy` allow.
    pub(super) fn schedule(&self, cronjob: &Value) {
        if cronjob["spec"]["suspend"].as_bool() == Some(true) {
            return;
        }
        let Some(cron) = cronjob["spec"]["schedule"]
            .as_str()
            .and_then(|s| s.parse::<croner::Cron>().ok())
        else {
            return;
        };
        let since = cronjob["status"]["lastScheduleTime"]
            .as_str()
            .or_else(|| cronjob["metadata"]["creationTimestamp"].as_str())
            .and_then(|t| t.parse::<Timestamp>().ok());
        let Some(since) = since else { return };
        let now = Timestamp::now();
        let due = cron
            .find_next_occurrence(&since.to_zoned(TimeZone::UTC), false)
            .ok()
            .map(|z| z.timestamp())
            .filter(|next| *next <= now);
        let Some(due) = due else { return };
        let active = self.active_jobs(cronjob);
        match cronjob["spec"]["concurrencyPolicy"].as_str() {
            Some("Forbid") if !active.is_empty() => return,
            Some("Replace") => {
                let ns = cronjob["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default();
                let mut store = lock(&self.shared.store);
                if let Some(jobs) = store.resolve("batch", "v1", "jobs") {
                    for job in &active {
                        let name = job["metadata"]["name"].as_str().unwrap_or_default();
                        let _ = store.delete(&jobs, ns, name, &Default::default());
                    }
                }
            }
            _ => {}
        }
        self.spawn_job(cronjob, due);
    }

    fn spawn_job(&self, cronjob: &Value, at: Timestamp) -> Option<String> {
        let ns = cronjob["metadata"]["namespace"].as_str()?.to_string();
        let cron_name = cronjob["metadata"]["name"].as_str()?;
        let name = format!("{cron_name}-{}", at.as_second() / 60);
        let template = &cronjob["spec"]["jobTemplate"];
        let job = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": name,
                "labels": template["metadata"]["labels"],
                "annotations": template["metadata"]["annotations"],
                "ownerReferences": [{
                    "apiVersion": "batch/v1", "kind": "CronJob", "name": cron_name,
                    "uid": cronjob["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true
                }]
            },
            "spec": template["spec"],
        });
        let mut store = lock(&self.shared.store);
        let jobs = store.resolve("batch", "v1", "jobs")?;
        let cronjobs = store.resolve("batch", "v1", "cronjobs")?;
        store.create(&jobs, &ns, job, MANAGER).ok()?;
        let mut updated = store.get(&cronjobs, &ns, cron_name).ok()?;
        updated["status"]["lastScheduleTime"] = json!(at.to_string());
        if let Err(error) =
            store.update(&cronjobs, &ns, cron_name, updated, Some("status"), MANAGER)
        {
            tracing::debug!(%error, "simulated CronJob status write");
        }
        Some(name)
    }

    /// The CronJob's Jobs that have not finished.
    fn active_jobs(&self, cronjob: &Value) -> Vec<Value> {
        self.owned_jobs(cronjob)
            .into_iter()
            .filter(|j| !finished(j))
            .collect()
    }

    fn owned_jobs(&self, cronjob: &Value) -> Vec<Value> {
        let uid = &cronjob["metadata"]["uid"];
        let store = lock(&self.shared.store);
        store
            .resolve("batch", "v1", "jobs")
            .and_then(|rt| {
                store
                    .list(
                        &rt,
                        cronjob["metadata"]["namespace"].as_str(),
                        &Default::default(),
                    )
                    .ok()
            })
            .map(|(items, _)| items)
            .unwrap_or_default()
            .into_iter()
            .filter(|j| {
                j["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == *uid))
            })
            .collect()
    }

    /// `lastSuccessfulTime` and `active` from the CronJob's Jobs.
    pub(super) fn cronjob_status(&self, cronjob: &Value) -> Value {
        let owned = self.owned_jobs(cronjob);
        let mut status = cronjob["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let active: Vec<Value> = owned
            .iter()
            .filter(|j| !finished(j))
            .map(|j| json!({"apiVersion": "batch/v1", "kind": "Job", "name": j["metadata"]["name"], "namespace": j["metadata"]["namespace"], "uid": j["metadata"]["uid"]}))
            .collect();
        if active.is_empty() {
            if let Some(m) = status.as_object_mut() {
                m.remove("active");
            }
        } else {
            status["active"] = Value::Array(active);
        }
        if let Some(last) = owned
            .iter()
            .filter_map(|j| j["status"]["completionTime"].as_str())
            .max()
        {
            status["lastSuccessfulTime"] = json!(last);
        }
        status
    }
}

fn pick(messages: Option<&[String]>, i: i64) -> Option<String> {
    let messages = messages.filter(|m| !m.is_empty())?;
    let i = usize::try_from(i).unwrap_or_default() % messages.len();
    messages.get(i).cloned()
}

/// The message the pod itself asks for: its annotation, or its container's env.
fn termination_message(pod: &Value) -> Option<String> {
    if let Some(message) = pod["metadata"]["annotations"]["sim/termination-message"].as_str() {
        return Some(message.to_string());
    }
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["env"].as_array().into_iter().flatten())
        .find(|e| e["name"] == "SIM_TERMINATION_MESSAGE")
        .and_then(|e| e["value"].as_str())
        .map(String::from)
}

fn pod_status(pod: &Value, outcome: JobOutcome, message: &str) -> Value {
    let containers: Vec<&Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let started = pod["status"]["startTime"]
        .as_str()
        .map_or_else(now, String::from);
    let state = match outcome {
        JobOutcome::Hold => json!({"running": {"startedAt": started}}),
        JobOutcome::Succeed | JobOutcome::Fail => {
            let failed = outcome == JobOutcome::Fail;
            json!({"terminated": {
                "exitCode": i32::from(failed),
                "reason": if failed { "Error" } else { "Completed" },
                "message": message,
                "startedAt": started,
                "finishedAt": started,
            }})
        }
    };
    let phase = match outcome {
        JobOutcome::Hold => "Running",
        JobOutcome::Succeed => "Succeeded",
        JobOutcome::Fail => "Failed",
    };
    json!({
        "phase": phase,
        "startTime": started,
        "containerStatuses": containers.iter().map(|c| json!({
            "name": c["name"], "image": c["image"], "ready": outcome == JobOutcome::Hold,
            "restartCount": 0, "state": state,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::faults::Faults;
    use crate::shared::Shared;

    #[test]
    fn a_due_schedule_creates_one_job_owned_by_the_cronjob() {
        let shared = Arc::new(Shared::new(100, Faults::default()));
        let workloads = Workloads {
            shared: shared.clone(),
            state: Arc::default(),
        };
        let cronjob = json!({
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "backup"},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "i"}]}}}}}
        });
        let stored = {
            let mut store = lock(&shared.store);
            let rt = store.resolve("batch", "v1", "cronjobs");
            rt.and_then(|rt| store.create(&rt, "default", cronjob, "test").ok())
                .map(|w| w.object)
        };
        let Some(mut stored) = stored else {
            panic!("CronJob not created")
        };
        // Pretend it was created ten minutes ago: one run is due.
        let earlier = Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_mins(10);
        stored["metadata"]["creationTimestamp"] = json!(earlier.to_string());
        workloads.schedule(&stored);
        let jobs = {
            let store = lock(&shared.store);
            let rt = store.resolve("batch", "v1", "jobs");
            rt.and_then(|rt| store.list(&rt, None, &Default::default()).ok())
                .map(|(items, _)| items)
                .unwrap_or_default()
        };
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0]["metadata"]["ownerReferences"][0]["name"], "backup");
        assert_eq!(
            jobs[0]["spec"]["template"]["spec"]["containers"][0]["image"],
            "i"
        );
    }

    fn workloads() -> (Arc<Shared>, Workloads) {
        let shared = Arc::new(Shared::new(100, Faults::default()));
        let workloads = Workloads {
            shared: shared.clone(),
            state: Arc::default(),
        };
        (shared, workloads)
    }

    fn create(shared: &Shared, plural: &str, obj: Value) -> Value {
        let mut store = lock(&shared.store);
        let rt = store.resolve("batch", "v1", plural);
        match rt.and_then(|rt| store.create(&rt, "default", obj, "test").ok()) {
            Some(written) => written.object,
            None => panic!("{plural} not created"),
        }
    }

    fn list(shared: &Shared, group: &str, plural: &str) -> Vec<Value> {
        let store = lock(&shared.store);
        store
            .resolve(group, "v1", plural)
            .and_then(|rt| store.list(&rt, None, &Default::default()).ok())
            .map(|(items, _)| items)
            .unwrap_or_default()
    }

    fn job(name: &str, image: &str) -> Value {
        json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"completions": 3, "parallelism": 3, "completionMode": "Indexed",
                     "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "w", "image": image}]}}}
        })
    }

    #[test]
    fn an_indexed_job_runs_a_pod_per_completion_each_with_its_index_and_message() {
        let (shared, workloads) = workloads();
        workloads.set_default_termination_messages(vec!["even".into(), "odd".into()]);
        let job = create(&shared, "jobs", job("run", "batch:1"));
        let status = workloads.job_status(&job);
        assert_eq!(
            status.as_ref().map(|s| s["succeeded"].clone()),
            Some(json!(3))
        );
        let mut pods = list(&shared, "", "pods");
        pods.sort_by_key(|p| p["metadata"]["name"].as_str().map(String::from));
        assert_eq!(pods.len(), 3);
        for (i, pod) in pods.iter().enumerate() {
            assert_eq!(pod["metadata"]["labels"]["job-name"], "run");
            assert_eq!(
                pod["metadata"]["annotations"][COMPLETION_INDEX],
                i.to_string()
            );
            assert_eq!(
                pod["spec"]["containers"][0]["env"][0],
                json!({"name": "JOB_COMPLETION_INDEX", "value": i.to_string()})
            );
            assert_eq!(pod["status"]["phase"], "Succeeded");
            let terminated = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
            assert_eq!(terminated["exitCode"], 0);
            assert_eq!(
                terminated["message"],
                if i % 2 == 0 { "even" } else { "odd" }
            );
        }
    }

    #[test]
    fn a_failing_image_fails_its_pods_and_the_job() {
        let (shared, workloads) = workloads();
        let job = create(&shared, "jobs", job("run", "registry.example/batch-fail:1"));
        let status = workloads.job_status(&job);
        assert_eq!(
            status.as_ref().map(|s| s["conditions"][0]["type"].clone()),
            Some(json!("Failed"))
        );
        let pods = list(&shared, "", "pods");
        assert!(pods.iter().all(|p| p["status"]["phase"] == "Failed"
            && p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1));
    }

    #[test]
    fn forbid_skips_a_due_run_while_the_last_one_runs() {
        let (shared, workloads) = workloads();
        workloads.set_default_job_outcome(JobOutcome::Hold);
        let cronjob = json!({
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
            "spec": {"schedule": "*/5 * * * *", "concurrencyPolicy": "Forbid",
                     "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "i"}]}}}}}
        });
        let mut stored = create(&shared, "cronjobs", cronjob);
        let earlier = Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_mins(10);
        stored["metadata"]["creationTimestamp"] = json!(earlier.to_string());
        workloads.schedule(&stored);
        let jobs = list(&shared, "batch", "jobs");
        assert_eq!(jobs.len(), 1);
        workloads.job_status(&jobs[0]);
        // Another run comes due while the first still runs: skipped.
        stored["status"]["lastScheduleTime"] = json!(earlier.to_string());
        workloads.schedule(&stored);
        assert_eq!(list(&shared, "batch", "jobs").len(), 1);
    }
}
