//! The TradingAlgorithm operator on a real API server, running as its own ServiceAccount under
//! the RBAC deploy/ grants. Skipped without `E2E_CLUSTER=1`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::dashboards::every_panel_shows;
use e2e::operator::Operator;
use e2e::scenario::{TRADING_ALGORITHM, condition, is_true, lease_holder, writes_over};
use e2e::{TestNamespace, until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

pub(crate) const OPERATOR: Operator = Operator::of(&trading_algorithm::OPERATOR);

const SEED: &str = "momentum-trader-prod";

pub(crate) async fn prepared(test: &str) -> Result<Option<TestNamespace>> {
    let Some(ns) = e2e::cluster(test).await? else {
        return Ok(None);
    };
    ns.grant(&OPERATOR).await?;
    Ok(Some(ns))
}

async fn active(ns: &TestNamespace, what: &str) -> Result<Value> {
    ns.status_until(
        TRADING_ALGORITHM,
        SEED,
        what,
        Duration::from_secs(120),
        |s| is_true(s, "Ready") && s["phase"] == "Active",
    )
    .await
}

const OPERATOR_WRITES: [(&str, &str, &str); 7] = [
    ("fintech.io", "tradingalgorithms", ""),
    ("fintech.io", "tradingalgorithms", "status"),
    ("apps", "deployments", ""),
    ("", "services", ""),
    ("", "configmaps", ""),
    ("autoscaling", "horizontalpodautoscalers", ""),
    ("events.k8s.io", "events", ""),
];

#[tokio::test]
async fn the_seed_example_converges_takes_updates_repairs_drift_goes_quiet_and_deletes_cleanly()
-> Result<()> {
    let Some(ns) = prepared("ta-seed").await? else {
        return Ok(());
    };
    let operator = ns.start_operator(&OPERATOR, "a", false).await?;
    ns.create_sample(TRADING_ALGORITHM, SEED, |_| {}).await?;
    active(&ns, "Active").await?;
    let uid = ns
        .get_json(TRADING_ALGORITHM, SEED)
        .await?
        .and_then(|o| o["metadata"]["uid"].as_str().map(String::from))
        .context("uid")?;
    for (group, kind, plural, name) in [
        (
            "apps",
            "Deployment",
            "deployments",
            format!("{SEED}-deployment"),
        ),
        ("", "Service", "services", format!("{SEED}-service")),
        ("", "ConfigMap", "configmaps", format!("{SEED}-config")),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            format!("{SEED}-hpa"),
        ),
    ] {
        let version = if group == "autoscaling" { "v2" } else { "v1" };
        let children = ns.children(group, version, kind, plural, &uid).await?;
        assert!(children.contains(&name), "{kind} {name} among {children:?}");
    }

    // Seed 002 Task 4: the scaling policy changes; the HPA follows.
    let algorithms = ns.api(TRADING_ALGORITHM);
    algorithms
        .patch(
            SEED,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"scalingPolicy": {"maxReplicas": 20}}})),
        )
        .await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ns.client.clone(), &ns.name);
    let hpa = format!("{SEED}-hpa");
    until("maxReplicas 20", Duration::from_secs(60), || async {
        Ok(hpas.get(&hpa).await?.spec.filter(|s| s.max_replicas == 20))
    })
    .await?;

    // Drift: someone edits the algorithm's configuration by hand; it is restored.
    let configs: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let config = format!("{SEED}-config");
    let original = configs.get(&config).await?.data.unwrap_or_default();
    let key = original.keys().next().cloned().context("a config key")?;
    configs
        .patch(
            &config,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {&key: "tampered"}})),
        )
        .await?;
    until("the config restored", Duration::from_secs(60), || async {
        Ok((configs.get(&config).await?.data.unwrap_or_default() == original).then_some(()))
    })
    .await?;
    active(&ns, "Active again").await?;

    let quiet = writes_over(
        &ns.client,
        &OPERATOR_WRITES,
        Duration::from_secs(8),
        Duration::from_secs(11),
    )
    .await?;
    println!("trading-algorithm: writes over two converged resyncs: {quiet:?}");
    assert!(quiet.is_empty(), "a converged operator wrote: {quiet:?}");

    // Deletion stops trading (scale to zero), records the final figures, and the garbage
    // collector takes the children.
    algorithms.delete(SEED, &DeleteParams::default()).await?;
    until("the algorithm gone", Duration::from_secs(90), || async {
        Ok(algorithms.get_opt(SEED).await?.is_none().then_some(()))
    })
    .await?;
    ns.until_none_left(
        &[
            ("apps", "v1", "Deployment", "deployments"),
            (
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
            ),
        ],
        Duration::from_secs(60),
    )
    .await?;
    operator.assert_no_rbac_denials()?;
    ns.cleanup().await
}

/// Seed 002's risk guard: a report past the daily loss limit halts trading (scaled to zero);
/// the resume annotation naming that halt (its `since`) brings it back. Every panel of the
/// operator's dashboard, and of the fleet's, shows it.
#[tokio::test]
async fn a_breach_of_the_loss_limit_halts_trading_and_the_resume_annotation_restarts_it()
-> Result<()> {
    let Some(ns) = prepared("ta-risk").await? else {
        return Ok(());
    };
    let operator = ns.start_operator(&OPERATOR, "a", true).await?;
    ns.create_sample(TRADING_ALGORITHM, SEED, |_| {}).await?;
    active(&ns, "Active").await?;
    let day = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%d")
        .to_string();
    let report: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": format!("{SEED}-report"), "labels": {"fintech.io/report-for": SEED}},
        "data": {"tradingDay": day, "totalTrades": "412", "dailyPnL": "-250000"},
    }))?;
    let configs: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    configs
        .patch(
            &format!("{SEED}-report"),
            &PatchParams::apply("algorithm").force(),
            &Patch::Apply(&report),
        )
        .await?;
    let halted = ns
        .status_until(
            TRADING_ALGORITHM,
            SEED,
            "halted",
            Duration::from_secs(60),
            |s| is_true(s, "RiskLimitBreached") && s["riskHalt"]["tradingDay"] == day.as_str(),
        )
        .await?;
    assert_eq!(halted["totalTrades"], 412);
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    let deployment = format!("{SEED}-deployment");
    until("scaled to zero", Duration::from_secs(60), || async {
        Ok(deployments
            .get(&deployment)
            .await?
            .spec
            .filter(|s| s.replicas == Some(0)))
    })
    .await?;

    ns.api(TRADING_ALGORITHM)
        .patch(
            SEED,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"fintech.io/resume-trading": halted["riskHalt"]["since"]}}})),
        )
        .await?;
    let resumed = active(&ns, "trading again").await?;
    // Trading again by a human's decision while the loss is still past the limit.
    let breach = condition(&resumed, "RiskLimitBreached");
    assert_eq!(breach["status"], "True", "{breach}");
    assert_eq!(breach["reason"], "ResumedOverLimit", "{breach}");
    until("replicas restored", Duration::from_secs(60), || async {
        Ok(deployments
            .get(&deployment)
            .await?
            .spec
            .filter(|s| s.replicas.is_some_and(|r| r > 0)))
    })
    .await?;
    // Seed 002's dashboard shows the algorithm, its P&L against its limit and its trades.
    every_panel_shows(&trading_algorithm::OPERATOR, &operator, &ns.name, &[]).await?;
    operator.assert_no_rbac_denials()?;
    ns.cleanup().await
}

#[tokio::test]
async fn deleting_the_namespace_completes() -> Result<()> {
    let Some(ns) = prepared("ta-nsdelete").await? else {
        return Ok(());
    };
    let operator = ns.start_operator(&OPERATOR, "a", false).await?;
    ns.create_sample(TRADING_ALGORITHM, SEED, |_| {}).await?;
    active(&ns, "Active").await?;
    let started = Instant::now();
    ns.cleanup().await?;
    println!(
        "trading-algorithm: namespace deleted in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    drop(operator);
    Ok(())
}

#[tokio::test]
async fn a_standby_takes_over_when_the_leader_is_killed() -> Result<()> {
    let Some(ns) = prepared("ta-failover").await? else {
        return Ok(());
    };
    let mut a = ns.start_operator(&OPERATOR, "replica-a", true).await?;
    let mut b = ns.start_operator(&OPERATOR, "replica-b", true).await?;
    ns.create_sample(TRADING_ALGORITHM, SEED, |_| {}).await?;
    active(&ns, "Active").await?;
    let leader = lease_holder(&ns.client, &a.home, &a.lease)
        .await?
        .context("a leader")?;
    let (leader_process, standby) = if leader == "replica-a" {
        (&mut a, "replica-b")
    } else {
        (&mut b, "replica-a")
    };
    leader_process.kill()?;
    let killed = Instant::now();
    ns.api(TRADING_ALGORITHM)
        .patch(
            SEED,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"scalingPolicy": {"maxReplicas": 9}}})),
        )
        .await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ns.client.clone(), &ns.name);
    let hpa = format!("{SEED}-hpa");
    until(
        "the standby applies a change",
        Duration::from_secs(60),
        || async { Ok(hpas.get(&hpa).await?.spec.filter(|s| s.max_replicas == 9)) },
    )
    .await?;
    let failover = killed.elapsed();
    let holder = lease_holder(&ns.client, &a.home, &a.lease).await?;
    if holder.as_deref() != Some(standby) {
        bail!("the Lease is held by {holder:?}, not the standby {standby}");
    }
    println!(
        "trading-algorithm: failover after the leader was killed: {:.1}s",
        failover.as_secs_f64()
    );
    let current = if standby == "replica-a" {
        &mut a
    } else {
        &mut b
    };
    current.assert_no_rbac_denials()?;
    ns.cleanup().await?;
    current.terminate(Duration::from_secs(30)).await
}

/// Another team's object with any of the sample's child names is never changed, adopted,
/// scaled, mounted, selected or deleted, on create, update and delete of a resource, and the
/// resource's status names it (operator-harness's foreign-object check, on a real server).
#[tokio::test]
async fn another_teams_objects_are_never_touched() -> Result<()> {
    let Some(ns) = prepared("ta-foreign").await? else {
        return Ok(());
    };
    let operator = ns.start_operator(&OPERATOR, "a", false).await?;
    let probe = ns.sample_json(TRADING_ALGORITHM, SEED, |_| {})?;
    crate::foreign::never_touched(ns, operator, &trading_algorithm::OPERATOR, probe, &[]).await
}
