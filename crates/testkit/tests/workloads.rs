//! The simulated workload controllers, seen through a real client as an operator sees them.

use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use testkit::{ApiServer, JobOutcome};

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Result<Option<T>>) -> Result<T> {
    for _ in 0..200 {
        if let Some(v) = probe().await? {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out waiting for {what}")
}

fn deployment(name: &str, replicas: i32, deadline: i32) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "progressDeadlineSeconds": deadline,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "v1"}]}}}
    }))?)
}

fn condition(d: &Deployment, type_: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test]
async fn deployments_become_ready_or_not_as_the_test_says() -> Result<()> {
    let server = ApiServer::new();
    let workloads = server.simulate_workloads();
    let deps: Api<Deployment> = Api::default_namespaced(server.client());
    deps.create(&PostParams::default(), &deployment("web", 3, 600)?)
        .await?;

    let ready = eventually("ready", async || {
        let d = deps.get("web").await?;
        Ok((d.status.as_ref().and_then(|s| s.ready_replicas) == Some(3)).then_some(d))
    })
    .await?;
    assert_eq!(
        ready.status.as_ref().and_then(|s| s.observed_generation),
        Some(1)
    );
    assert_eq!(
        condition(&ready, "Available"),
        Some(("True".into(), "MinimumReplicasAvailable".into()))
    );

    workloads.set_ready_limit("default", "web", Some(1));
    let degraded = eventually("unready pods", async || {
        let d = deps.get("web").await?;
        Ok((d.status.as_ref().and_then(|s| s.ready_replicas) == Some(1)).then_some(d))
    })
    .await?;
    assert_eq!(
        condition(&degraded, "Available").map(|c| c.0),
        Some("False".into())
    );
    Ok(())
}

#[tokio::test]
async fn a_stalled_rollout_exceeds_its_progress_deadline() -> Result<()> {
    let server = ApiServer::new();
    let workloads = server.simulate_workloads();
    let deps: Api<Deployment> = Api::default_namespaced(server.client());
    deps.create(&PostParams::default(), &deployment("web", 2, 1)?)
        .await?;
    workloads.stall_rollouts("default", "web", true);
    deps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}}),
        ),
    )
    .await?;
    let failed = eventually("deadline exceeded", async || {
        let d = deps.get("web").await?;
        Ok((condition(&d, "Progressing").map(|c| c.1).as_deref()
            == Some("ProgressDeadlineExceeded"))
        .then_some(d))
    })
    .await?;
    assert_eq!(
        failed.status.as_ref().and_then(|s| s.updated_replicas),
        Some(0)
    );
    assert_eq!(
        failed.status.as_ref().and_then(|s| s.observed_generation),
        Some(2)
    );
    Ok(())
}

#[tokio::test]
async fn jobs_from_cronjobs_succeed_or_fail_as_told() -> Result<()> {
    let server = ApiServer::new();
    let workloads = server.simulate_workloads();
    let cronjobs: Api<CronJob> = Api::default_namespaced(server.client());
    let jobs: Api<Job> = Api::default_namespaced(server.client());
    let cj: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "backup"},
        "spec": {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "b", "image": "tool"}]}}}}}
    }))?;
    cronjobs.create(&PostParams::default(), &cj).await?;

    let Some(first) = workloads.trigger_cronjob("default", "backup") else {
        bail!("no job created")
    };
    eventually("job complete", async || {
        Ok(jobs
            .get(&first)
            .await?
            .status
            .and_then(|s| s.succeeded)
            .filter(|n| *n == 1))
    })
    .await?;
    eventually("lastSuccessfulTime", async || {
        Ok(cronjobs
            .get("backup")
            .await?
            .status
            .and_then(|s| s.last_successful_time))
    })
    .await?;

    workloads.set_default_job_outcome(JobOutcome::Fail);
    // Jobs are named by the minute they were scheduled for; a second trigger in the same
    // minute would reuse the name, so fail a fresh Job created by hand instead.
    let job: Job = serde_json::from_value(
        json!({"metadata": {"name": "manual"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "b", "image": "tool"}]}}}}),
    )?;
    jobs.create(&PostParams::default(), &job).await?;
    let failed = eventually("job failed", async || {
        Ok(jobs
            .get("manual")
            .await?
            .status
            .filter(|s| s.failed == Some(1)))
    })
    .await?;
    assert!(
        failed
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Failed" && c.reason.as_deref() == Some("BackoffLimitExceeded"))
    );
    Ok(())
}

#[tokio::test]
async fn the_autoscaler_keeps_replicas_within_its_bounds() -> Result<()> {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let server = ApiServer::new();
    let _workloads = server.simulate_workloads();
    let deps: Api<Deployment> = Api::default_namespaced(server.client());
    let mut d = deployment("web", 1, 600)?;
    if let Some(spec) = d.spec.as_mut() {
        spec.replicas = None;
    }
    deps.create(&PostParams::default(), &d).await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::default_namespaced(server.client());
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": 5}
    }))?;
    hpas.create(&PostParams::default(), &hpa).await?;
    eventually("scaled to min", async || {
        Ok(deps
            .get("web")
            .await?
            .status
            .filter(|s| s.ready_replicas == Some(3)))
    })
    .await?;
    Ok(())
}
