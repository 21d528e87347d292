//! The PaymentService operator end to end against testkit (with its simulated Deployment,
//! autoscaler, Job and CronJob controllers): what a user sees after each Day-2 action of
//! seed 000.

use std::time::Duration;

use anyhow::{Context as _, Result};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use payment_service::crd::PaymentService;
use serde_json::{Value, json};
use testkit::Verb;

use crate::common::{
    Harness, IMAGE_15, IMAGE_16, NS, Payments, SEED, Setup, canary, sample_with, seed_sample,
    start, upgrade,
};

fn rolling_update(spec: &mut Value) {
    spec["deploymentStrategy"] = json!({"type": "RollingUpdate", "progressDeadlineSeconds": 120});
    spec["autoscaling"]["enabled"] = json!(false);
    spec["replicas"] = json!(4);
}

#[tokio::test]
async fn the_seed_example_reconciles_to_ready_with_every_child() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;

    let d = h
        .deployment(SEED)
        .context("the Deployment named after the service")?;
    let labels = &d["metadata"]["labels"];
    assert_eq!(labels["app"], SEED);
    assert_eq!(labels["version"], "1.5.0");
    assert_eq!(
        labels["app.kubernetes.io/managed-by"],
        "payment-service-operator"
    );
    assert_eq!(labels["app.kubernetes.io/part-of"], "payments-engine");
    assert_eq!(
        d["spec"]["replicas"], 3,
        "the autoscaler brought it to minReplicas"
    );
    assert_eq!(
        d["metadata"]["ownerReferences"][0]["kind"],
        "PaymentService"
    );
    let pod = &d["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    assert_eq!(pod["spec"]["serviceAccountName"], "payment-gateway-sa");
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);

    let svc = h.get("v1", "services", SEED).context("service")?;
    assert_eq!(svc["spec"]["selector"]["app"], SEED);
    let hpa = h
        .get("autoscaling/v2", "horizontalpodautoscalers", SEED)
        .context("hpa")?;
    assert_eq!(hpa["spec"]["maxReplicas"], 20);
    assert_eq!(
        hpa["spec"]["metrics"][2]["external"]["metric"]["name"],
        "azure_service_bus_queue_length"
    );
    assert!(h.get("policy/v1", "poddisruptionbudgets", SEED).is_some());
    assert!(
        h.get("v1", "serviceaccounts", "payment-gateway-sa")
            .is_some()
    );
    let cron = h
        .get("batch/v1", "cronjobs", &format!("{SEED}-backup"))
        .context("backup cronjob")?;
    assert_eq!(cron["spec"]["schedule"], "0 2 * * *");
    for (api, plural) in [
        ("rbac.authorization.k8s.io/v1", "roles"),
        ("rbac.authorization.k8s.io/v1", "rolebindings"),
        ("v1", "serviceaccounts"),
    ] {
        assert!(
            h.get(api, plural, &format!("{SEED}-backup")).is_some(),
            "{plural}"
        );
    }
    assert!(
        h.get("v1", "persistentvolumeclaims", &format!("{SEED}-backups"))
            .is_some()
    );

    let status = h.status();
    assert_eq!(status["currentVersion"], "1.5.0");
    assert_eq!(status["availableReplicas"], 3);
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(h.condition("Ready")["status"], "True");
    assert_eq!(h.condition("Progressing")["status"], "False");
    assert_eq!(h.condition("Degraded")["status"], "False");
    // No Prometheus Operator in this cluster: said so, nothing failed.
    assert_eq!(
        h.condition("ServiceMonitor")["reason"],
        "PrometheusOperatorNotInstalled"
    );
    assert_eq!(h.events("ServiceMonitorSkipped").len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_converged_resync_writes_nothing() -> Result<()> {
    let h = start(Setup {
        prometheus_operator: true,
        ..Setup::default()
    })
    .await?;
    h.create_running(&seed_sample()?).await?;
    h.eventually("ServiceMonitor applied", |h| {
        h.condition("ServiceMonitor")["status"] == "True"
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.server.reset_stats();
    // Resync is 300 ms in these tests: several full passes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = h.server.stats();
    assert!(
        stats.count(Verb::Get, "deployments") >= 3,
        "the resyncs ran: {stats:?}"
    );
    assert_eq!(stats.writes(), 0, "{stats:?}");
    Ok(())
}

#[tokio::test]
async fn a_servicemonitor_scrapes_the_metrics_port_where_the_prometheus_operator_is_installed()
-> Result<()> {
    let h = start(Setup {
        prometheus_operator: true,
        ..Setup::default()
    })
    .await?;
    h.create_running(&seed_sample()?).await?;
    h.eventually("ServiceMonitor", |h| {
        h.get("monitoring.coreos.com/v1", "servicemonitors", SEED)
            .is_some()
    })
    .await?;
    let sm = h
        .get("monitoring.coreos.com/v1", "servicemonitors", SEED)
        .context("servicemonitor")?;
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/actuator/prometheus");

    h.patch_spec(json!({"monitoring": {"prometheus": {"enabled": false}}}))
        .await?;
    h.eventually("ServiceMonitor removed", |h| {
        h.get("monitoring.coreos.com/v1", "servicemonitors", SEED)
            .is_none()
            && h.condition("ServiceMonitor").is_null()
    })
    .await
}

#[tokio::test]
async fn an_upgrade_moves_current_version_only_once_the_new_version_is_available() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&sample_with(rolling_update)?).await?;

    h.workloads.stall_rollouts(NS, SEED, true);
    h.patch_spec(upgrade("1.6.0")).await?;
    h.eventually("Progressing", |h| {
        h.condition("Progressing")["status"] == "True"
    })
    .await?;
    assert_eq!(h.image_of(SEED).as_deref(), Some(IMAGE_16));
    assert_eq!(h.status()["currentVersion"], "1.5.0");
    assert_eq!(h.status()["phase"], "Progressing");
    assert_eq!(h.condition("Progressing")["reason"], "RollingUpdate");

    h.workloads.stall_rollouts(NS, SEED, false);
    h.eventually("1.6.0 current", |h| h.status()["currentVersion"] == "1.6.0")
        .await?;
    assert_eq!(h.condition("Progressing")["status"], "False");
    assert_eq!(h.status()["phase"], "Running");
    let mut completions: Vec<_> = h
        .events("RolloutComplete")
        .iter()
        .map(|e| (e["note"].clone(), e["series"].clone()))
        .collect();
    completions.sort_by_key(|(note, _)| note.to_string());
    assert_eq!(
        completions,
        vec![
            (json!("version 1.5.0 is available and serving"), Value::Null),
            (json!("version 1.6.0 is available and serving"), Value::Null),
        ],
        "one event each"
    );
    Ok(())
}

/// 1.5.0 serving with RollingUpdate, 1.6.0 rolling out and never becoming available.
async fn upgrade_that_stalls() -> Result<Harness> {
    let h = start(Setup::default()).await?;
    h.create_running(&sample_with(rolling_update)?).await?;
    h.workloads.stall_rollouts(NS, SEED, true);
    h.patch_spec(upgrade("1.6.0")).await?;
    h.eventually("rolling", |h| h.image_of(SEED).as_deref() == Some(IMAGE_16))
        .await?;
    Ok(h)
}

#[tokio::test]
async fn a_failed_upgrade_rolls_back_and_is_not_retried_until_the_spec_changes() -> Result<()> {
    let h = upgrade_that_stalls().await?;
    h.advance(121);
    h.eventually("rolled back", |h| {
        h.image_of(SEED).as_deref() == Some(IMAGE_15)
    })
    .await?;
    h.eventually("Degraded", |h| h.condition("Degraded")["status"] == "True")
        .await?;
    let degraded = h.condition("Degraded");
    assert_eq!(degraded["reason"], "RolledBack");
    assert!(
        degraded["message"]
            .as_str()
            .is_some_and(|m| m.contains("1.6.0") && m.contains("progressDeadlineSeconds")),
        "{degraded}"
    );
    assert_eq!(h.status()["phase"], "Degraded");
    assert_eq!(h.status()["currentVersion"], "1.5.0");
    let warning = h.events("RolledBack");
    assert_eq!(warning.len(), 1);
    assert_eq!(warning[0]["type"], "Warning");
    assert!(h.metrics().encode().contains(
        r#"payment_service_rollouts_total{namespace="payments",strategy="RollingUpdate",result="rolled_back",cause="deadline"} 1"#
    ));

    // Resyncs do not try 1.6.0 again.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(h.image_of(SEED).as_deref(), Some(IMAGE_15));

    // A new spec is tried.
    h.workloads.stall_rollouts(NS, SEED, false);
    h.patch_spec(upgrade("1.6.1")).await?;
    h.eventually("1.6.1 current", |h| h.status()["currentVersion"] == "1.6.1")
        .await?;
    assert_eq!(h.condition("Degraded")["status"], "False");
    Ok(())
}

/// A pod of version 1.6.0 whose service container is in CrashLoopBackOff, controlled by
/// `owner` (kind, name, uid). Status is the kubelet's to write: created first, then its
/// status subresource.
async fn crash_looping_pod(
    h: &Harness,
    name: &str,
    owner: Option<(&str, &str, &str)>,
) -> Result<()> {
    let owners: Vec<Value> = owner
        .into_iter()
        .map(|(kind, name, uid)| {
            json!({"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true})
        })
        .collect();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "ownerReferences": owners,
                     "labels": {"app": SEED, "version": "1.6.0"}},
        "spec": {"containers": [{"name": "payment-service", "image": IMAGE_16}]},
    }))?;
    let pods = Api::<Pod>::namespaced(h.client(), NS);
    pods.create(&PostParams::default(), &pod).await?;
    let status = json!({"status": {"containerStatuses": [{
        "name": "payment-service", "image": IMAGE_16, "imageID": "", "ready": false,
        "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
    }]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

/// A ReplicaSet named `name` controlled by `owner_uid` (testkit runs no ReplicaSet
/// controller: the test stands in for the Deployment controller), and its uid.
async fn replica_set(h: &Harness, name: &str, owner_uid: &str) -> Result<String> {
    let set: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": SEED, "uid": owner_uid, "controller": true}
        ]},
        "spec": {"selector": {"matchLabels": {"app": SEED}},
                 "template": {"metadata": {"labels": {"app": SEED}},
                              "spec": {"containers": [{"name": "payment-service", "image": IMAGE_16}]}}},
    }))?;
    let created = Api::<ReplicaSet>::namespaced(h.client(), NS)
        .create(&PostParams::default(), &set)
        .await?;
    created
        .metadata
        .uid
        .context("a created ReplicaSet has a uid")
}

/// Another team's pods that crash-loop with the service's labels, version and image: one
/// with no owner, one under a ReplicaSet of a Deployment that is not the service's.
async fn foreign_crash_loops(h: &Harness) -> Result<()> {
    crash_looping_pod(h, "payment-initiation-service-0-stray", None).await?;
    let theirs = replica_set(h, "payment-initiation-service-0", "uid-of-their-deployment").await?;
    crash_looping_pod(
        h,
        "payment-initiation-service-0-theirs",
        Some(("ReplicaSet", "payment-initiation-service-0", &theirs)),
    )
    .await
}

/// A pod of the new version in CrashLoopBackOff fails the rollout at once: no clock advance,
/// the deadline (120 s) far away. Only the service's own pods count (another team's
/// crash-looping pods under the same labels, named to be listed first, are not read).
#[tokio::test]
async fn an_upgrade_whose_pods_crash_loop_is_rolled_back_without_waiting_for_its_deadline()
-> Result<()> {
    let h = upgrade_that_stalls().await?;
    foreign_crash_loops(&h).await?;
    let deployment_uid = h.deployment(SEED).context("the Deployment")?["metadata"]["uid"]
        .as_str()
        .context("a uid")?
        .to_owned();
    let ours = replica_set(&h, "payment-initiation-service-6d4f", &deployment_uid).await?;
    crash_looping_pod(
        &h,
        "payment-initiation-service-6d4f-x",
        Some(("ReplicaSet", "payment-initiation-service-6d4f", &ours)),
    )
    .await?;
    h.eventually("rolled back", |h| {
        h.image_of(SEED).as_deref() == Some(IMAGE_15)
    })
    .await?;
    h.eventually("the failure recorded", |h| {
        h.status()["failedRollout"]["message"].is_string()
    })
    .await?;
    let failed = h.status()["failedRollout"]["message"].clone();
    assert_eq!(
        failed,
        "pod payment-initiation-service-6d4f-x crash-loops: container payment-service is in CrashLoopBackOff after 4 restarts, last exit code 137 (OOMKilled)"
    );
    let warning = h.events("RolledBack");
    assert_eq!(warning.len(), 1);
    assert_eq!(warning[0]["type"], "Warning");
    assert!(
        warning[0]["note"]
            .as_str()
            .is_some_and(|n| n.contains("CrashLoopBackOff") && n.contains("rolled back to 1.5.0")),
        "{warning:?}"
    );
    assert!(h.metrics().encode().contains(
        r#"payment_service_rollouts_total{namespace="payments",strategy="RollingUpdate",result="rolled_back",cause="crash_loop"} 1"#
    ));
    Ok(())
}

/// Pods that only look like the service's (labels, version, image, container name) never
/// roll it back: the upgrade waits for its own deadline.
#[tokio::test]
async fn another_teams_crash_looping_pods_never_roll_the_service_back() -> Result<()> {
    let h = upgrade_that_stalls().await?;
    h.eventually("a rollout in progress", |h| {
        h.status()["rollout"].is_object()
    })
    .await?;
    foreign_crash_loops(&h).await?;
    h.server.reset_stats();
    // Every pass of a rollout lists the pods (resync is 300 ms here); the ReplicaSet of
    // their pod is read and found not to be the service's.
    h.eventually("two passes saw the pods", |h| {
        let stats = h.server.stats();
        stats.count(Verb::List, "pods") >= 2 && stats.count(Verb::Get, "replicasets") >= 2
    })
    .await?;
    assert_eq!(
        h.image_of(SEED).as_deref(),
        Some(IMAGE_16),
        "not rolled back"
    );
    h.advance(121);
    h.eventually("rolled back at the deadline", |h| {
        h.status()["failedRollout"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("progressDeadlineSeconds"))
    })
    .await?;
    assert!(h.metrics().encode().contains(r#"cause="deadline"} 1"#));
    Ok(())
}

#[tokio::test]
async fn scaling_changes_replicas_or_the_autoscalers_bounds() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&sample_with(rolling_update)?).await?;
    assert!(
        h.get("autoscaling/v2", "horizontalpodautoscalers", SEED)
            .is_none()
    );
    h.patch_spec(json!({"replicas": 10})).await?;
    h.eventually("10 replicas", |h| {
        h.deployment(SEED)
            .is_some_and(|d| d["spec"]["replicas"] == 10)
            && h.status()["availableReplicas"] == 10
    })
    .await?;

    h.patch_spec(json!({"autoscaling": {"enabled": true, "minReplicas": 5, "maxReplicas": 30}}))
        .await?;
    let bounds = |min: i32, max: i32| {
        move |h: &Harness| {
            h.get("autoscaling/v2", "horizontalpodautoscalers", SEED)
                .is_some_and(|hpa| {
                    hpa["spec"]["minReplicas"] == min && hpa["spec"]["maxReplicas"] == max
                })
        }
    };
    // `replicas: 10` stays the floor while autoscaling (seed 000's manual scaling).
    h.eventually("HPA bounds, floor at replicas", bounds(10, 30))
        .await?;
    h.patch_spec(json!({"replicas": 2})).await?;
    h.eventually("floor back at minReplicas", bounds(5, 30))
        .await?;
    h.patch_spec(json!({"autoscaling": {"enabled": false}}))
        .await?;
    h.eventually("HPA removed", |h| {
        h.get("autoscaling/v2", "horizontalpodautoscalers", SEED)
            .is_none()
    })
    .await
}

#[tokio::test]
async fn switching_autoscaling_on_keeps_the_running_replicas() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&sample_with(rolling_update)?).await?;
    // 4 replicas run; the autoscaler may run 2 to 10, so it keeps 4. Were `replicas` simply
    // dropped from the apply, the Deployment would fall to 1 and the autoscaler to 2.
    h.patch_spec(json!({"autoscaling": {"enabled": true, "minReplicas": 2, "maxReplicas": 10}}))
        .await?;
    h.eventually("HPA", |h| {
        h.get("autoscaling/v2", "horizontalpodautoscalers", SEED)
            .is_some()
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let d = h.deployment(SEED).context("deployment")?;
    assert_eq!(
        d["spec"]["replicas"], 4,
        "{}",
        d["metadata"]["managedFields"]
    );
    Ok(())
}

#[tokio::test]
async fn a_configuration_change_rolls_the_pods() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;
    let hash = |h: &Harness| {
        h.deployment(SEED).map(|d| {
            d["spec"]["template"]["metadata"]["annotations"]["payments.io/config-hash"].clone()
        })
    };
    let before = hash(&h);
    h.patch_spec(json!({"config": {"features": {"rateLimitPerSecond": 2000}}}))
        .await?;
    h.eventually("new config hash", |h| hash(h) != before)
        .await?;
    let d = h.deployment(SEED).context("deployment")?;
    assert_eq!(
        operator_harness::env_value(&d, "RATE_LIMIT_PER_SECOND").as_deref(),
        Some("2000")
    );
    Ok(())
}

#[tokio::test]
async fn children_edited_or_deleted_by_hand_are_restored() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(h.client(), NS)
        .delete(SEED, &DeleteParams::default())
        .await?;
    h.server
        .merge_patch(
            "apps/v1",
            "deployments",
            NS,
            SEED,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "payment-service", "image": "evil:latest"}]}}}}),
        )
        .context("patch")?;
    h.eventually("restored", |h| {
        h.get("v1", "services", SEED).is_some() && h.image_of(SEED).as_deref() == Some(IMAGE_15)
    })
    .await
}

#[tokio::test]
async fn a_canary_walks_its_steps_then_promotes() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&sample_with(canary)?).await?;
    let canary = format!("{SEED}-canary");
    h.patch_spec(upgrade("1.6.0")).await?;

    h.eventually("step 1: 1 of 4", |h| {
        h.deployment(&canary)
            .is_some_and(|d| d["spec"]["replicas"] == 1)
            && h.deployment(SEED)
                .is_some_and(|d| d["spec"]["replicas"] == 3)
    })
    .await?;
    assert_eq!(h.image_of(&canary).as_deref(), Some(IMAGE_16));
    assert_eq!(h.image_of(SEED).as_deref(), Some(IMAGE_15));
    let svc = h.get("v1", "services", SEED).context("service")?;
    assert_eq!(
        svc["spec"]["selector"],
        json!({"app": SEED}),
        "both tracks serve"
    );
    // Held for the pause.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(h.status()["rollout"]["step"], 0);

    h.advance(61);
    h.eventually("step 2: 2 of 4", |h| {
        h.deployment(&canary)
            .is_some_and(|d| d["spec"]["replicas"] == 2)
    })
    .await?;
    h.advance(61);
    h.eventually("promoted", |h| {
        h.status()["currentVersion"] == "1.6.0" && h.deployment(&canary).is_none()
    })
    .await?;
    assert_eq!(h.image_of(SEED).as_deref(), Some(IMAGE_16));
    assert_eq!(h.deployment(SEED).context("stable")?["spec"]["replicas"], 4);
    assert_eq!(h.events("CanaryStep").len(), 2);
    assert_eq!(h.events("CanaryPromoting").len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_restarted_operator_resumes_a_canary_where_it_was() -> Result<()> {
    let mut h = start(Setup::default()).await?;
    h.create_running(&sample_with(canary)?).await?;
    let canary = format!("{SEED}-canary");
    h.patch_spec(upgrade("1.6.0")).await?;
    h.eventually("step 1", |h| {
        h.status()["rollout"]["step"] == 0 && h.deployment(&canary).is_some()
    })
    .await?;
    h.advance(61);
    h.eventually("step 2", |h| {
        h.status()["rollout"]["step"] == 1
            && h.deployment(&canary)
                .is_some_and(|d| d["spec"]["replicas"] == 2)
    })
    .await?;
    let started = h.status()["rollout"]["startedAt"].clone();

    h.restart_operator().await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = h.status();
    assert_eq!(status["rollout"]["step"], 1, "not back to the first step");
    assert_eq!(status["rollout"]["startedAt"], started);
    assert_eq!(
        h.deployment(&canary).context("canary")?["spec"]["replicas"],
        2
    );
    assert_eq!(
        h.events("RolloutStarted").len(),
        2,
        "1.5.0 and 1.6.0, not again"
    );

    h.advance(61);
    h.eventually("promoted", |h| h.status()["currentVersion"] == "1.6.0")
        .await
}

#[tokio::test]
async fn a_version_whose_pods_never_become_ready_is_rolled_back() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&sample_with(rolling_update)?).await?;
    // Readiness fails: the new pods never become ready (a crash loop looks the same).
    h.workloads.set_ready_limit(NS, SEED, Some(0));
    h.patch_spec(upgrade("1.6.0")).await?;
    h.eventually("rolling", |h| h.image_of(SEED).as_deref() == Some(IMAGE_16))
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.status()["currentVersion"], "1.5.0");
    h.advance(121);
    h.eventually("rolled back", |h| {
        h.image_of(SEED).as_deref() == Some(IMAGE_15)
    })
    .await?;
    h.eventually("Degraded", |h| {
        h.condition("Degraded")["reason"] == "RolledBack"
    })
    .await?;
    let message = h.condition("Degraded")["message"].clone();
    assert!(
        message
            .as_str()
            .is_some_and(|m| m.contains("0 of 4 replicas available")),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_canary_that_does_not_become_ready_is_aborted_and_rolled_back() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&sample_with(canary)?).await?;
    let canary = format!("{SEED}-canary");
    h.workloads.stall_rollouts(NS, &canary, true);
    h.patch_spec(upgrade("1.6.0")).await?;
    h.eventually("canary up", |h| h.deployment(&canary).is_some())
        .await?;
    h.advance(121);
    h.eventually("aborted", |h| {
        h.deployment(&canary).is_none()
            && h.deployment(SEED)
                .is_some_and(|d| d["spec"]["replicas"] == 4)
    })
    .await?;
    assert_eq!(h.image_of(SEED).as_deref(), Some(IMAGE_15));
    h.eventually("Degraded", |h| {
        h.condition("Degraded")["reason"] == "RolledBack"
    })
    .await?;
    let rolled_back = h.events("RolledBack");
    assert!(
        rolled_back[0]["note"]
            .as_str()
            .is_some_and(|n| n.contains("canary step 1 of 2")),
        "{rolled_back:?}"
    );
    Ok(())
}

#[tokio::test]
async fn blue_green_switches_the_service_once_the_new_colour_is_available() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;
    let green = format!("{SEED}-green");
    h.workloads.stall_rollouts(NS, &green, true);
    h.patch_spec(upgrade("1.6.0")).await?;
    h.eventually("green up", |h| h.deployment(&green).is_some())
        .await?;
    let selector = |h: &Harness| {
        h.get("v1", "services", SEED)
            .map(|s| s["spec"]["selector"]["payments.io/track"].clone())
    };
    assert_eq!(selector(&h), Some(json!("stable")), "blue serves meanwhile");
    assert_eq!(h.condition("Progressing")["reason"], "PreviewStarting");

    h.workloads.stall_rollouts(NS, &green, false);
    h.eventually("switched", |h| {
        selector(h) == Some(json!("green")) && h.deployment(SEED).is_none()
    })
    .await?;
    let status = h.status();
    assert_eq!(status["activeColor"], "green");
    assert_eq!(status["currentVersion"], "1.6.0");
    let hpa = h
        .get("autoscaling/v2", "horizontalpodautoscalers", SEED)
        .context("hpa")?;
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], green);
    assert_eq!(h.events("TrafficSwitched").len(), 1);
    Ok(())
}

/// v2's blue-green: the new version is tried on the preview Service, and traffic switches
/// only when a person promotes it.
#[tokio::test]
async fn a_held_blue_green_rollout_is_previewed_and_switches_on_promotion() -> Result<()> {
    let mut ps = seed_sample()?;
    if let Some(b) = ps
        .spec
        .deployment_strategy
        .as_mut()
        .and_then(|s| s.blue_green.as_mut())
    {
        b.preview_service = Some("checkout-preview".into());
        b.auto_promote = Some(false);
    }
    let h = start(Setup::default()).await?;
    h.create_running(&ps).await?;
    let green = format!("{SEED}-green");
    let preview = |h: &Harness| {
        h.get("v1", "services", "checkout-preview")
            .map(|s| s["spec"]["selector"]["payments.io/track"].clone())
    };
    assert_eq!(preview(&h), Some(json!("green")), "no pod to preview yet");

    h.patch_spec(upgrade("1.6.0")).await?;
    h.eventually("waiting for promotion", |h| {
        h.condition("Progressing")["reason"] == "AwaitingPromotion"
    })
    .await?;
    let message = h.condition("Progressing")["message"].clone();
    assert_eq!(
        message,
        "version 1.6.0 is available on the idle colour and waits for promotion: annotate the PaymentService payments.io/promote=1.6.0"
    );
    assert!(
        h.deployment(&green).is_some(),
        "the new version runs, previewed"
    );
    assert_eq!(
        h.get("v1", "services", SEED)
            .map(|s| s["spec"]["selector"]["payments.io/track"].clone()),
        Some(json!("stable")),
        "traffic stays on 1.5.0"
    );

    let promote = json!({"metadata": {"annotations": {"payments.io/promote": "1.6.0"}}});
    h.services()
        .patch(SEED, &PatchParams::default(), &Patch::Merge(&promote))
        .await?;
    h.eventually("switched", |h| {
        h.status()["activeColor"] == "green" && h.status()["currentVersion"] == "1.6.0"
    })
    .await?;
    assert_eq!(
        preview(&h),
        Some(json!("stable")),
        "the preview follows the idle colour"
    );
    Ok(())
}

#[tokio::test]
async fn deletion_stops_every_deployment_and_keeps_the_backups() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&sample_with(canary)?).await?;
    h.patch_spec(upgrade("1.6.0")).await?;
    let canary = format!("{SEED}-canary");
    h.eventually("canary up", |h| h.deployment(&canary).is_some())
        .await?;

    h.services().delete(SEED, &DeleteParams::default()).await?;
    h.eventually("gone", |h| {
        h.get("payments.io/v2", "paymentservices", SEED).is_none()
            && h.deployment(SEED).is_none()
            && h.deployment(&canary).is_none()
            && h.get("v1", "services", SEED).is_none()
    })
    .await?;
    let claim = h
        .get("v1", "persistentvolumeclaims", &format!("{SEED}-backups"))
        .context("the backups outlive the service")?;
    assert!(claim["metadata"]["ownerReferences"].is_null());
    assert_eq!(h.events("CleanupDone").len(), 1);

    // Created again under the same name, the service adopts its backups (handed over on
    // release), as the docs say: no conflict.
    h.create_running(&seed_sample()?).await?;
    let uid = h
        .get("payments.io/v2", "paymentservices", SEED)
        .context("recreated")?["metadata"]["uid"]
        .clone();
    h.eventually("the claim adopted", |h| {
        h.get("v1", "persistentvolumeclaims", &format!("{SEED}-backups"))
            .is_some_and(|c| c["metadata"]["ownerReferences"][0]["uid"] == uid)
    })
    .await?;
    assert_eq!(h.condition("Ready")["status"], "True");
    Ok(())
}

#[tokio::test]
async fn last_backup_follows_the_last_successful_backup_job() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;
    assert!(h.status()["lastBackup"].is_null());
    h.workloads
        .trigger_cronjob(NS, &format!("{SEED}-backup"))
        .context("trigger")?;
    h.eventually("lastBackup", |h| h.status()["lastBackup"].is_string())
        .await?;
    assert_eq!(h.events("BackupSucceeded").len(), 1);
    Ok(())
}

#[tokio::test]
async fn the_schema_refuses_what_is_plainly_invalid() -> Result<()> {
    let h = start(Setup::default()).await?;
    for (edit, field, message) in [
        (
            json!({"autoscaling": {"minReplicas": 30}}),
            "spec.autoscaling",
            "minReplicas must be less than or equal to maxReplicas",
        ),
        (
            json!({"monitoring": {"tracing": {"samplingRate": 1.5}}}),
            "spec.monitoring.tracing.samplingRate",
            "",
        ),
        (
            json!({"deploymentStrategy": {"blueGreen": null, "canary": {"steps": [{"setWeight": 50}, {"setWeight": 25}]}}}),
            "spec.deploymentStrategy.canary.steps",
            "canary step weights must increase",
        ),
        (
            json!({"deploymentStrategy": {"blueGreen": null, "canary": {"steps": [{"setWeight": 120}]}}}),
            "spec.deploymentStrategy.canary.steps[0].setWeight",
            "",
        ),
        (
            json!({"deploymentStrategy": {"canary": {"steps": [{"setWeight": 50}]}}}),
            "spec.deploymentStrategy",
            "set exactly one of rollingUpdate, canary and blueGreen",
        ),
        (
            json!({"backup": {"schedule": "every night"}}),
            "spec.backup.schedule",
            "",
        ),
    ] {
        // As v2 says it: the version the operator's client writes.
        let mut ps = serde_json::to_value(seed_sample()?)?;
        json_patch::merge(&mut ps["spec"], &edit);
        let ps: PaymentService = serde_json::from_value(ps)?;
        let err = h
            .services()
            .create(&PostParams::default(), &ps)
            .await
            .err()
            .with_context(|| format!("{edit} was accepted"))?;
        let text = err.to_string();
        assert!(text.contains(field), "{edit}: {text}");
        assert!(text.contains(message), "{edit}: {text}");
    }
    Ok(())
}

#[tokio::test]
async fn the_operator_refuses_what_the_schema_let_through_and_touches_nothing() -> Result<()> {
    let h = start(Setup::default()).await?;
    // 61 is not a minute, but only a cron parser knows.
    let ps = sample_with(|spec| spec["backup"]["schedule"] = json!("61 2 * * *"))?;
    h.create(&ps).await?;
    h.eventually("refused", |h| {
        h.condition("Ready")["reason"] == "InvalidSpec"
    })
    .await?;
    let message = h.condition("Ready")["message"].clone();
    assert!(
        message
            .as_str()
            .is_some_and(|m| m.contains("spec.backup.schedule")),
        "{message}"
    );
    assert_eq!(h.status()["phase"], "Failed");
    assert!(!h.events("InvalidSpec").is_empty());
    assert!(h.deployment(SEED).is_none(), "nothing half-applied");

    h.patch_spec(json!({"backup": {"schedule": "1 2 * * *"}}))
        .await?;
    h.eventually("Running once fixed", |h| h.status()["phase"] == "Running")
        .await
}

#[tokio::test]
async fn a_missing_tls_secret_is_a_wait_that_ends_when_the_secret_appears() -> Result<()> {
    // A resync far beyond the test: only the wait's own polling can end it.
    let h = start(Setup {
        without_tls_secret: true,
        resync: Some(Duration::from_secs(600)),
        ..Setup::default()
    })
    .await?;
    h.create(&seed_sample()?).await?;
    h.eventually("waiting", |h| {
        h.condition("Ready")["message"]
            .as_str()
            .is_some_and(|m| m.contains("payment-gateway-tls"))
    })
    .await?;
    assert_eq!(h.status()["phase"], "Pending", "a wait, not a failure");
    assert_eq!(h.condition("Ready")["reason"], "SecretMissing");
    assert!(h.deployment(SEED).is_none());
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        h.events("SecretMissing").len(),
        1,
        "one event when the wait starts"
    );
    crate::common::create_tls_secret(&h.client()).await?;
    h.eventually("Running", |h| h.status()["phase"] == "Running")
        .await
}

/// An annotation the operator cannot act on is not ignored without a word: a promote naming
/// a version the service does not have, and an annotation another kind reads, each get one
/// Warning naming it and what is accepted — once, so resyncs stay free of writes.
#[tokio::test]
async fn annotations_it_cannot_act_on_are_named_once() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;
    let annotate = json!({"metadata": {"annotations": {
        "payments.io/promote": "9.9.9",
        "payments.io/run-now": "1",
    }}});
    h.services()
        .patch(SEED, &PatchParams::default(), &Patch::Merge(&annotate))
        .await?;
    let named = h
        .eventually("both named", |h| h.events("AnnotationIgnored").len() == 2)
        .await;
    named.with_context(|| format!("{:?}", h.events("AnnotationIgnored")))?;
    let notes: Vec<String> = h
        .events("AnnotationIgnored")
        .iter()
        .map(|e| e["note"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("payments.io/promote=9.9.9")
            && n.contains("no version is waiting for promotion")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("payments.io/run-now=1")
            && n.contains("a PaymentService does not read it")),
        "{notes:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.events("AnnotationIgnored").len(), 2, "said once");
    Ok(())
}

/// Lowering retention while backups run would have the next run delete the exports older
/// than the new limit: the API server refuses it (a CRD transition rule, no webhook here),
/// and the deliberate path — disable, lower, enable — goes through.
#[tokio::test]
async fn backup_retention_only_grows_while_backups_are_enabled() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;
    let retention = |days: i32| json!({"spec": {"backup": {"retention": days}}});
    let refused = h
        .merge::<PaymentService>(NS, SEED, retention(7))
        .await
        .expect_err("refused while backups are enabled")
        .to_string();
    assert!(
        refused.contains("spec.backup.retention: Forbidden: cannot fall from 30 to 7 days while backups are enabled")
            && refused.contains("set spec.backup.enabled to false first"),
        "{refused}"
    );
    let cron = |h: &Harness| h.get("batch/v1", "cronjobs", &format!("{SEED}-backup"));
    let kept = |h: &Harness| {
        let job = cron(h).unwrap_or_default()["spec"]["jobTemplate"].clone();
        let args = &job["spec"]["template"]["spec"]["containers"][0]["args"];
        args.as_array().into_iter().flatten().find_map(|a| {
            let days = a.as_str()?.strip_prefix("--retention-days=")?;
            Some(days.to_string())
        })
    };
    assert_eq!(kept(&h).as_deref(), Some("30"));

    h.merge::<PaymentService>(NS, SEED, retention(90)).await?;
    let disabled = json!({"spec": {"backup": {"enabled": false}}});
    h.merge::<PaymentService>(NS, SEED, disabled).await?;
    h.merge::<PaymentService>(NS, SEED, retention(7)).await?;
    let enabled = json!({"spec": {"backup": {"enabled": true}}});
    h.merge::<PaymentService>(NS, SEED, enabled).await?;
    h.eventually("the backup keeps 7 days", |h| {
        kept(h).as_deref() == Some("7")
    })
    .await?;
    Ok(())
}
