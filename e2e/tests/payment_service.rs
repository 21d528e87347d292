//! The PaymentService operator on a real API server, running as its own ServiceAccount under
//! the RBAC deploy/ grants: the real Deployment controller, HPA controller, garbage collector
//! and namespace controller decide what happens. Skipped without `E2E_CLUSTER=1`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::apiserver::{delta, request_totals, writes};
use e2e::dashboards::every_panel_shows;
use e2e::operator::{Operator, Webhooks};
use e2e::prometheus::{RealPrometheus, Target, WorkloadStandIn};
use e2e::scenario::{PAYMENT_SERVICE, condition, is_true, lease_holder, writes_over};
use e2e::{TestNamespace, until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kubectl_payments::{kinds, pause, request, status, why};
use operator_core::tooling::ChildRef;
use payment_service::backup::Export;
use payment_service::crd::conversion::{V2, convert};
use serde_json::{Value, json};

/// The seed sample (v1, as the seed writes it) converted to v2 as the API server stores it;
/// these tests run no conversion webhook (the admission tests do).
pub(crate) fn stored(ps: &mut Value) {
    if let Ok(converted) = convert(ps.take(), V2) {
        *ps = converted;
    }
}

pub(crate) const OPERATOR: Operator = Operator::of(&payment_service::OPERATOR);

pub(crate) const SEED: &str = "payment-initiation-service";

/// The seed's TLS Secret, as cert-manager would issue it (nothing reads the content).
async fn tls_secret(ns: &TestNamespace) -> Result<()> {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "payment-gateway-tls"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "stand-in", "tls.key": "stand-in"},
    }))?;
    Api::<Secret>::namespaced(ns.client.clone(), &ns.name)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

/// A namespace with the operator's Role bound and the seed's Secret.
pub(crate) async fn prepared(test: &str) -> Result<Option<TestNamespace>> {
    let Some(ns) = e2e::cluster(test).await? else {
        return Ok(None);
    };
    ns.grant(&OPERATOR).await?;
    tls_secret(&ns).await?;
    Ok(Some(ns))
}

/// The backup CronJob runs the operator's own image; its run, authenticated as the Job's
/// ServiceAccount, exports the service and its children with no more than the Role the
/// operator gave it (there is no kubelet to run the Job itself).
async fn backup_job_exports_under_its_own_role(ns: &TestNamespace) -> Result<()> {
    let jobs: Api<CronJob> = Api::namespaced(ns.client.clone(), &ns.name);
    let job = jobs.get(&format!("{SEED}-backup")).await?;
    let pod = job
        .spec
        .and_then(|s| s.job_template.spec)
        .map(|j| j.template.spec);
    let container = pod
        .flatten()
        .map(|p| p.containers[0].clone())
        .unwrap_or_default();
    // Out of cluster, the operator has no Pod to read its image from: this release's image.
    assert_eq!(
        container.image.as_deref(),
        Some(payment_service::RELEASE_IMAGE)
    );
    let args = std::iter::once("payment-service-operator".to_string())
        .chain(container.args.unwrap_or_default());
    let mut run = Export::from_args(args.map(Into::into).collect())
        .context("the CronJob runs `payment-service-operator backup`")?;
    run.to = e2e::operator::work_dir().join(&ns.name).join("backups");
    std::fs::create_dir_all(&run.to)?;
    let as_job = ns.client_as(&ns.name, &format!("{SEED}-backup")).await?;
    let done = run.run(as_job).await?;
    println!(
        "payment-service: backup {} with {} children",
        done.dir.display(),
        done.children
    );
    let children = std::fs::read_to_string(done.dir.join("children.yaml"))?;
    let kinds: Vec<String> = operator_core::manifests::documents(&children)?
        .iter()
        .filter_map(|c| c["kind"].as_str().map(String::from))
        .collect();
    for kind in [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} exported: {kinds:?}"
        );
    }
    let service = std::fs::read_to_string(done.dir.join("paymentservice.yaml"))?;
    assert!(service.contains(&format!("name: {SEED}")) && !service.contains("managedFields"));
    Ok(())
}

pub(crate) async fn ready(ns: &TestNamespace, what: &str) -> Result<Value> {
    ns.status_until(PAYMENT_SERVICE, SEED, what, Duration::from_secs(120), |s| {
        is_true(s, "Ready") && s["phase"] == "Running"
    })
    .await
}

/// What the operator writes in the test's namespace, as the API server counts it.
const OPERATOR_WRITES: [(&str, &str, &str); 12] = [
    ("payments.io", "paymentservices", ""),
    ("payments.io", "paymentservices", "status"),
    ("apps", "deployments", ""),
    ("", "services", ""),
    ("", "serviceaccounts", ""),
    ("", "persistentvolumeclaims", ""),
    ("autoscaling", "horizontalpodautoscalers", ""),
    ("policy", "poddisruptionbudgets", ""),
    ("batch", "cronjobs", ""),
    ("rbac.authorization.k8s.io", "roles", ""),
    ("rbac.authorization.k8s.io", "rolebindings", ""),
    ("events.k8s.io", "events", ""),
];

#[tokio::test]
async fn the_seed_example_converges_takes_updates_repairs_drift_goes_quiet_and_deletes_cleanly()
-> Result<()> {
    let Some(ns) = prepared("ps-seed").await? else {
        return Ok(());
    };
    let operator = ns.start_operator(&OPERATOR, "a", false).await?;
    ns.create_sample(PAYMENT_SERVICE, SEED, stored).await?;
    ready(&ns, "Ready").await?;
    let uid = ns
        .get_json(PAYMENT_SERVICE, SEED)
        .await?
        .and_then(|o| o["metadata"]["uid"].as_str().map(String::from))
        .context("uid")?;
    for (group, version, kind, plural, name) in [
        ("apps", "v1", "Deployment", "deployments", SEED.to_string()),
        ("", "v1", "Service", "services", SEED.to_string()),
        (
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            SEED.to_string(),
        ),
        (
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            SEED.to_string(),
        ),
        (
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            "payment-gateway-sa".to_string(),
        ),
        (
            "batch",
            "v1",
            "CronJob",
            "cronjobs",
            format!("{SEED}-backup"),
        ),
    ] {
        let children = ns.children(group, version, kind, plural, &uid).await?;
        assert!(children.contains(&name), "{kind} {name} among {children:?}");
    }
    backup_job_exports_under_its_own_role(&ns).await?;

    // A spec update lands: the autoscaler's bounds move.
    let services = ns.api(PAYMENT_SERVICE);
    services
        .patch(
            SEED,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"autoscaling": {"maxReplicas": 12}}})),
        )
        .await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ns.client.clone(), &ns.name);
    until("maxReplicas 12", Duration::from_secs(60), || async {
        Ok(hpas.get(SEED).await?.spec.filter(|s| s.max_replicas == 12))
    })
    .await?;

    // Drift on a child is repaired: someone points the Service elsewhere.
    let svc: Api<Service> = Api::namespaced(ns.client.clone(), &ns.name);
    svc.patch(
        SEED,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"selector": {"app": "elsewhere"}}})),
    )
    .await?;
    until(
        "the Service selector restored",
        Duration::from_secs(60),
        || async {
            let selector = svc
                .get(SEED)
                .await?
                .spec
                .and_then(|s| s.selector)
                .unwrap_or_default();
            Ok((selector.get("app").map(String::as_str) == Some(SEED)).then_some(()))
        },
    )
    .await?;
    ready(&ns, "Ready again").await?;

    // Converged: two resync periods (5 s each here) without a single write.
    let admin = ns.client.clone();
    let quiet = writes_over(
        &admin,
        &OPERATOR_WRITES,
        Duration::from_secs(8),
        Duration::from_secs(11),
    )
    .await?;
    println!("payment-service: writes over two converged resyncs: {quiet:?}");
    assert!(quiet.is_empty(), "a converged operator wrote: {quiet:?}");

    paused_then_resumed(&ns, &hpas).await?;

    // Deletion runs the finalizer and leaves nothing of the service behind (the backup claim
    // is kept on purpose, without an owner).
    services.delete(SEED, &DeleteParams::default()).await?;
    until(
        "the PaymentService gone",
        Duration::from_secs(60),
        || async { Ok(services.get_opt(SEED).await?.is_none().then_some(())) },
    )
    .await?;
    ns.until_none_left(
        &[
            ("apps", "v1", "Deployment", "deployments"),
            ("", "v1", "Service", "services"),
        ],
        Duration::from_secs(60),
    )
    .await?;
    operator.assert_no_rbac_denials()?;
    // The namespace goes while the operator runs: its finalizers need it.
    ns.cleanup().await
}

/// `kubectl payments` on the real API server: `status` lists the service Ready, `why` its
/// children and no advice; `pause`
/// returns once the status names it as who paused, and a spec change then reaches no child
/// (the API server counts no write to any child kind); `resume` lands the change.
async fn paused_then_resumed(
    ns: &TestNamespace,
    hpas: &Api<HorizontalPodAutoscaler>,
) -> Result<()> {
    let rows = status::rows(&ns.client, Some(&ns.name)).await?;
    let listed: Vec<_> = rows
        .iter()
        .map(|r| (r.kind.as_str(), r.name.as_str(), r.ready.as_str()))
        .collect();
    assert_eq!(listed, [("PaymentService", SEED, "True")], "{rows:?}");

    let (kind, name) = kinds::target(&format!("ps/{SEED}"))?;
    let why = why::explain(&ns.client, &kind, &ns.name, &name).await?;
    for line in [
        format!("  Deployment/{SEED}: "),
        format!("  HorizontalPodAutoscaler/{SEED}: "),
        format!("  CronJob/{SEED}-backup: "),
        "Ready: nothing to do.".to_string(),
    ] {
        assert!(why.contains(&line), "{line:?} in {why}");
    }
    let wait = Duration::from_secs(30);
    let target = request::Target {
        kind: &kind,
        namespace: &ns.name,
        name: &name,
    };
    let answer = pause::set(&ns.client, target, true, wait).await?;
    assert!(answer.contains("by kubectl-payments at "), "{answer}");

    let children: Vec<_> = OPERATOR_WRITES
        .into_iter()
        .filter(|(_, resource, _)| !["paymentservices", "events"].contains(resource))
        .collect();
    let admin = ns.client.clone();
    let before = writes(&request_totals(&admin).await?, &children);
    let change = Patch::Merge(json!({"spec": {"autoscaling": {"maxReplicas": 14}}}));
    ns.api(PAYMENT_SERVICE)
        .patch(SEED, &PatchParams::default(), &change)
        .await?;
    // Two resync periods (5 s each here).
    tokio::time::sleep(Duration::from_secs(11)).await;
    let written = delta(&before, &writes(&request_totals(&admin).await?, &children));
    println!("payment-service: child writes while paused: {written:?}");
    assert!(
        written.is_empty(),
        "a paused resource's children were written: {written:?}"
    );
    let max = hpas.get(SEED).await?.spec.map(|s| s.max_replicas);
    assert_eq!(
        max,
        Some(12),
        "the change reached the autoscaler while paused"
    );

    let answer = pause::set(&ns.client, target, false, wait).await?;
    println!("payment-service: {answer}");
    until(
        "maxReplicas 14 once resumed",
        Duration::from_secs(60),
        || async { Ok(hpas.get(SEED).await?.spec.filter(|s| s.max_replicas == 14)) },
    )
    .await
    .map(drop)
}

/// An upgrade lands; a version whose pods never become ready is rolled back at its progress
/// deadline; a version whose pods crash-loop is rolled back at once, long before its deadline.
/// Every panel of the operator's dashboard, and of the fleet's, shows them.
#[tokio::test]
async fn an_upgrade_lands_and_failing_versions_are_rolled_back() -> Result<()> {
    let Some(ns) = prepared("ps-upgrade").await? else {
        return Ok(());
    };
    let operator = ns.start_operator(&OPERATOR, "a", true).await?;
    ns.create_sample(PAYMENT_SERVICE, SEED, |ps| {
        ps["spec"]["deploymentStrategy"] =
            json!({"type": "RollingUpdate", "progressDeadlineSeconds": 15});
        ps["spec"]["autoscaling"]["enabled"] = json!(false);
        ps["spec"]["replicas"] = json!(2);
        stored(ps);
    })
    .await?;
    ready(&ns, "Ready").await?;
    let services = ns.api(PAYMENT_SERVICE);
    let upgrade = |version: &str| {
        let image = format!("acr.azurecr.io/payment-initiation-service:{version}");
        let patch = json!({"spec": {"version": version, "image": image}});
        let services = services.clone();
        async move {
            services
                .patch(SEED, &PatchParams::default(), &Patch::Merge(patch))
                .await
        }
    };
    upgrade("1.6.0").await?;
    ns.status_until(
        PAYMENT_SERVICE,
        SEED,
        "1.6.0 current",
        Duration::from_secs(120),
        |s| s["currentVersion"] == "1.6.0" && s["phase"] == "Running",
    )
    .await?;
    let rolled_back = |version: &'static str, within: u64| {
        ns.status_until(
            PAYMENT_SERVICE,
            SEED,
            "rolled back",
            Duration::from_secs(within),
            move |s| {
                s["failedRollout"]["target"]["version"] == version
                    && s["currentVersion"] == "1.6.0"
                    && condition(s, "Degraded")["reason"] == "RolledBack"
            },
        )
    };
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    let back_on_the_serving_version = || {
        until(
            "the Deployment back on 1.6.0",
            Duration::from_secs(60),
            || async {
                let image = deployments
                    .get(SEED)
                    .await?
                    .spec
                    .and_then(|s| s.template.spec)
                    .and_then(|p| p.containers.first().and_then(|c| c.image.clone()));
                Ok(image.filter(|i| i.ends_with(":1.6.0")))
            },
        )
    };

    // The stand-in kubelet cannot pull an image whose name says `missing`: never ready, no
    // crash, so the progress deadline (15 s) decides.
    upgrade("1.7.0-missing").await?;
    let status = rolled_back("1.7.0-missing", 150).await?;
    assert_eq!(
        status["currentImage"],
        "acr.azurecr.io/payment-initiation-service:1.6.0"
    );
    let message = status["failedRollout"]["message"]
        .as_str()
        .unwrap_or_default();
    // Whichever sees the deadline first: the operator's clock or the Deployment controller.
    let deadline = ["progressDeadlineSeconds", "ProgressDeadlineExceeded"];
    assert!(deadline.iter().any(|d| message.contains(d)), "{message}");
    back_on_the_serving_version().await?;

    // Its pods crash-loop (the stand-in kubelet's `crash` images): rolled back within a
    // minute, though the deadline is the default 600 s.
    services
        .patch(
            SEED,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"deploymentStrategy": {"progressDeadlineSeconds": 600}}}),
            ),
        )
        .await?;
    let started = Instant::now();
    upgrade("1.8.0-crash").await?;
    let status = rolled_back("1.8.0-crash", 60).await?;
    println!(
        "payment-service: crash-looping version rolled back {:.1}s after the upgrade",
        started.elapsed().as_secs_f64()
    );
    let message = status["failedRollout"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("CrashLoopBackOff"), "{message}");
    back_on_the_serving_version().await?;

    // A person gives up on a version still rolling out (it never becomes ready, and its
    // deadline is 600 s away): `payments.io/abort` rolls it back at once.
    upgrade("1.9.0-missing").await?;
    ns.status_until(
        PAYMENT_SERVICE,
        SEED,
        "1.9.0-missing rolling out",
        Duration::from_secs(60),
        |s| s["rollout"]["target"]["version"] == "1.9.0-missing",
    )
    .await?;
    let abort =
        json!({"metadata": {"annotations": {payment_service::ABORT_ANNOTATION: "1.9.0-missing"}}});
    services
        .patch(SEED, &PatchParams::default(), &Patch::Merge(abort))
        .await?;
    let status = rolled_back("1.9.0-missing", 60).await?;
    assert_eq!(
        status["failedRollout"]["message"],
        "aborted with payments.io/abort=1.9.0-missing"
    );
    back_on_the_serving_version().await?;
    // The dashboard shows the rollouts, and the fleet's shows the operator.
    every_panel_shows(&payment_service::OPERATOR, &operator, &ns.name, &[]).await?;
    operator.assert_no_rbac_denials()?;
    // The namespace goes while the operator runs: its finalizers need it.
    ns.cleanup().await
}

/// A canary judged by a success rate read from a real Prometheus (scraping a stand-in
/// workload every second): at 99% success every step passes and the version is promoted; at
/// 50% the first step's analysis fails it and it is rolled back.
#[tokio::test]
async fn a_canary_is_promoted_when_its_analysis_passes_and_rolled_back_when_it_fails() -> Result<()>
{
    let Some(ns) = prepared("ps-analysis").await? else {
        return Ok(());
    };
    let workload = WorkloadStandIn::start(100.0, 0.99).await?;
    let target = Target {
        address: workload.address,
        labels: vec![
            ("namespace".to_string(), ns.name.clone()),
            ("service".to_string(), SEED.to_string()),
        ],
    };
    let prometheus = RealPrometheus::start(&ns.name, &[target]).await?;
    let reading = format!("  prometheus:\n    url: \"{}\"\n", prometheus.url);
    let operator = ns
        .start_operator_configured(&OPERATOR, "a", false, Webhooks::Off, &reading, &[])
        .await?;
    let rate = |status: &str| {
        format!(
            "sum(rate(payment_processor_transactions_total{{namespace=\"{{{{namespace}}}}\",service=\"{{{{service}}}}\"{status}}}[10s]))"
        )
    };
    let success_rate = format!("{} / {}", rate(",status=\"success\""), rate(""));
    ns.create_sample(PAYMENT_SERVICE, SEED, |ps| {
        ps["spec"]["deploymentStrategy"] = json!({
            "type": "Canary",
            "progressDeadlineSeconds": 120,
            "canarySteps": [{"setWeight": 25}, {"setWeight": 50}],
        });
        ps["spec"]["autoscaling"]["enabled"] = json!(false);
        ps["spec"]["replicas"] = json!(2);
        stored(ps);
        ps["spec"]["deploymentStrategy"]["canary"]["analysis"] = json!({"metrics": [{
            "name": "success-rate",
            "query": success_rate,
            "successCondition": "result >= 0.95",
            "interval": "5s",
        }]});
    })
    .await?;
    ready(&ns, "Ready").await?;
    let upgrade = |version: &str| {
        let image = format!("acr.azurecr.io/payment-initiation-service:{version}");
        let patch = json!({"spec": {"version": version, "image": image}});
        let services = ns.api(PAYMENT_SERVICE);
        async move {
            services
                .patch(SEED, &PatchParams::default(), &Patch::Merge(patch))
                .await
        }
    };

    let started = Instant::now();
    upgrade("1.6.0").await?;
    let status = ns
        .status_until(
            PAYMENT_SERVICE,
            SEED,
            "1.6.0 promoted",
            Duration::from_secs(150),
            |s| s["currentVersion"] == "1.6.0" && s["rollout"].is_null(),
        )
        .await?;
    assert!(status["failedRollout"].is_null(), "{status}");
    println!(
        "payment-service: canary promoted on its analysis in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Half the payments fail; the 10 s window forgets the good ones before the upgrade.
    workload.set_success_ratio(0.5);
    tokio::time::sleep(Duration::from_secs(12)).await;
    upgrade("1.7.0").await?;
    let status = ns
        .status_until(
            PAYMENT_SERVICE,
            SEED,
            "1.7.0 rolled back",
            Duration::from_secs(120),
            |s| s["failedRollout"]["target"]["version"] == "1.7.0",
        )
        .await?;
    let message = status["failedRollout"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("canary step 1 of 2")
            && message.contains("analysis metric success-rate failed"),
        "{message}"
    );
    assert_eq!(status["currentVersion"], "1.6.0");
    operator.assert_no_rbac_denials()?;
    ns.cleanup().await
}

/// Deleting the namespace deletes the operator's RoleBinding there too, often before the
/// PaymentService: the finalizer must still go, so the namespace does.
#[tokio::test]
async fn deleting_the_namespace_completes() -> Result<()> {
    let Some(ns) = prepared("ps-nsdelete").await? else {
        return Ok(());
    };
    let operator = ns.start_operator(&OPERATOR, "a", false).await?;
    ns.create_sample(PAYMENT_SERVICE, SEED, stored).await?;
    ready(&ns, "Ready").await?;
    let started = Instant::now();
    ns.cleanup().await?;
    println!(
        "payment-service: namespace deleted in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    drop(operator);
    Ok(())
}

/// Two replicas with `--leader-elect`: one reconciles; killed, the other takes over.
#[tokio::test]
async fn a_standby_takes_over_when_the_leader_is_killed() -> Result<()> {
    let Some(ns) = prepared("ps-failover").await? else {
        return Ok(());
    };
    let mut a = ns.start_operator(&OPERATOR, "replica-a", true).await?;
    let mut b = ns.start_operator(&OPERATOR, "replica-b", true).await?;
    ns.create_sample(PAYMENT_SERVICE, SEED, stored).await?;
    ready(&ns, "Ready").await?;
    let admin = ns.client.clone();
    let leader = lease_holder(&admin, &a.home, &a.lease)
        .await?
        .context("a leader")?;
    let (leader_process, standby) = if leader == "replica-a" {
        (&mut a, "replica-b")
    } else {
        (&mut b, "replica-a")
    };

    leader_process.kill()?;
    let killed = Instant::now();
    let services = ns.api(PAYMENT_SERVICE);
    services
        .patch(
            SEED,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"autoscaling": {"maxReplicas": 9}}})),
        )
        .await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ns.client.clone(), &ns.name);
    until(
        "the standby applies a change",
        Duration::from_secs(60),
        || async { Ok(hpas.get(SEED).await?.spec.filter(|s| s.max_replicas == 9)) },
    )
    .await?;
    let failover = killed.elapsed();
    let holder = lease_holder(&admin, &a.home, &a.lease).await?;
    if holder.as_deref() != Some(standby) {
        bail!("the Lease is held by {holder:?}, not the standby {standby}");
    }
    println!(
        "payment-service: failover after the leader was killed: {:.1}s",
        failover.as_secs_f64()
    );

    // A graceful stop hands over at once.
    let current = if standby == "replica-a" {
        &mut a
    } else {
        &mut b
    };
    current.assert_no_rbac_denials()?;
    let mut c = ns.start_operator(&OPERATOR, "replica-c", true).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stopped = Instant::now();
    current.terminate(Duration::from_secs(30)).await?;
    until("replica-c leads", Duration::from_secs(30), || async {
        Ok(
            (lease_holder(&admin, &c.home, &c.lease).await?.as_deref() == Some("replica-c"))
                .then_some(()),
        )
    })
    .await?;
    println!(
        "payment-service: hand-over on SIGTERM: {:.1}s",
        stopped.elapsed().as_secs_f64()
    );
    c.assert_no_rbac_denials()?;
    // The namespace goes while an operator runs: its finalizers need one.
    ns.cleanup().await?;
    c.terminate(Duration::from_secs(30)).await
}

/// Another team's object with any of the sample's child names is never changed, adopted,
/// scaled, mounted, selected or deleted, on create, update and delete of a resource, and the
/// resource's status names it (operator-harness's foreign-object check, on a real server).
#[tokio::test]
async fn another_teams_objects_are_never_touched() -> Result<()> {
    let Some(ns) = prepared("ps-foreign").await? else {
        return Ok(());
    };
    let operator = ns.start_operator(&OPERATOR, "a", false).await?;
    let probe = ns.sample_json(PAYMENT_SERVICE, SEED, stored)?;
    crate::foreign::never_touched(
        ns,
        operator,
        &payment_service::OPERATOR,
        probe,
        &[ChildRef {
            // The account the sample names is the user's: used as found, never a child name
            // another team's object could take.
            api_version: "v1",
            plural: "serviceaccounts",
            name: "payment-gateway-sa".into(),
        }],
    )
    .await
}
