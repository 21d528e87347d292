//! The seeds' walkthroughs, run as docs/seed-walkthroughs.md lists them: seed 000's Day-2
//! commands and seed 002's tasks, each the seed's own command where it runs here, or the
//! equivalent the doc gives (the product's names, the test's namespace instead of the seed's).
//! kubectl runs them against the real API server, with the operators running as their own
//! ServiceAccounts. Skipped without `E2E_CLUSTER=1`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use e2e::scenario::{PAYMENT_SERVICE, TRADING_ALGORITHM, is_true};
use e2e::{TestNamespace, until};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::Api;

use crate::payment_service::{self, stored};
use crate::trading_algorithm;

/// Runs `kubectl ARGS` (with `stdin` piped in, if any); its output, or why it failed.
fn kubectl(args: &[&str], stdin: Option<&str>) -> Result<std::result::Result<String, String>> {
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kubectl")?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok(match out.status.success() {
        true => Ok(text(&out.stdout)),
        false => Err(text(&out.stderr)),
    })
}

/// A walkthrough command that must succeed: its output.
fn run(args: &[&str], stdin: Option<&str>) -> Result<String> {
    match kubectl(args, stdin)? {
        Ok(out) => Ok(out),
        Err(why) => bail!("kubectl {}: {why}", args.join(" ")),
    }
}

/// Seed 000, "Automated Day 2 Operations" 1–3, on the seed's PaymentService with autoscaling
/// on: the upgrade rolls out, "scale up manually" (`replicas: 10`) runs ten pods through the
/// real autoscaler, and the configuration change reaches the pods' environment.
#[tokio::test]
async fn seed_000_day_2_commands_upgrade_scale_and_configure_the_service() -> Result<()> {
    let Some(ns) = payment_service::prepared("seed-000").await? else {
        return Ok(());
    };
    let operator = ns
        .start_operator(&payment_service::OPERATOR, "a", false)
        .await?;
    let name = payment_service::SEED;
    ns.create_sample(PAYMENT_SERVICE, name, stored).await?;
    payment_service::ready(&ns, "Ready").await?;
    let patch = |spec: &str| {
        run(
            &[
                "patch",
                "paymentservice",
                name,
                "-n",
                &ns.name,
                "-p",
                spec,
                "--type=merge",
            ],
            None,
        )
    };

    patch(
        r#"{"spec":{"version":"1.6.0","image":"acr.azurecr.io/payment-initiation-service:1.6.0"}}"#,
    )?;
    ns.status_until(
        PAYMENT_SERVICE,
        name,
        "1.6.0 serving",
        Duration::from_secs(180),
        |s| s["currentVersion"] == "1.6.0" && is_true(s, "Ready"),
    )
    .await?;

    patch(r#"{"spec":{"replicas":10}}"#)?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ns.client.clone(), &ns.name);
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    until(
        "ten replicas under the autoscaler",
        Duration::from_secs(120),
        || async {
            let Some(hpa) = hpas.get_opt(name).await? else {
                return Ok(None);
            };
            let spec = hpa.spec.unwrap_or_default();
            let scaled = deployments.get(&spec.scale_target_ref.name).await?;
            let replicas = scaled.spec.and_then(|s| s.replicas);
            Ok((spec.min_replicas == Some(10) && replicas == Some(10)).then_some(()))
        },
    )
    .await?;

    patch(
        r#"{"spec":{"config":{"features":{"enableRateLimiting":true,"rateLimitPerSecond":2000}}}}"#,
    )?;
    until(
        "the new limit in the pods' environment",
        Duration::from_secs(120),
        || async {
            let hpa = hpas.get(name).await?;
            let target = hpa.spec.unwrap_or_default().scale_target_ref.name;
            let deployment = deployments.get(&target).await?;
            let limit = operator_harness::env_value(&deployment, "RATE_LIMIT_PER_SECOND");
            Ok((limit.as_deref() == Some("2000")).then_some(()))
        },
    )
    .await?;
    operator.assert_no_rbac_denials()?;
    ns.cleanup().await
}

/// Seed 002, Task 2's checks against the RBAC the install (dist/install.yaml) created: the
/// seed's names are found, and every `auth can-i` answers yes, the seed's own
/// `update tradingalgorithms/status` (kubectl reads it as a TradingAlgorithm *named*
/// `status`) and the status subresource asked with `--subresource=status`.
#[tokio::test]
async fn seed_002_task_2_finds_the_operators_rbac_and_every_check_says_yes() -> Result<()> {
    if !e2e::enabled("seed-002-rbac") {
        return Ok(());
    }
    run(
        &[
            "get",
            "serviceaccount",
            "trading-operator",
            "-n",
            "trading-platform",
        ],
        None,
    )?;
    let role = run(
        &["describe", "clusterrole", "trading-operator-manager"],
        None,
    )?;
    ensure!(
        role.contains("tradingalgorithms.fintech.io/status"),
        "{role}"
    );
    let binding = run(
        &[
            "describe",
            "clusterrolebinding",
            "trading-operator-manager-binding",
        ],
        None,
    )?;
    ensure!(binding.contains("trading-operator"), "{binding}");
    let account = "--as=system:serviceaccount:trading-platform:trading-operator";
    let can_i = |words: &[&str]| {
        let mut args = vec!["auth", "can-i"];
        args.extend_from_slice(words);
        args.extend([account, "-n", "trading-platform"]);
        // `auth can-i` exits 1 for "no"; the answer is on stdout either way.
        let answer = kubectl(&args, None)?.unwrap_or_else(|_| "no".to_string());
        anyhow::Ok(answer.trim() == "yes")
    };
    ensure!(can_i(&["get", "tradingalgorithms"])?);
    ensure!(can_i(&["create", "deployments"])?);
    ensure!(can_i(&[
        "update",
        "tradingalgorithms",
        "--subresource=status"
    ])?);
    ensure!(
        can_i(&["update", "tradingalgorithms/status"])?,
        "the seed's form as written (an object named status, as kubectl reads it)"
    );
    Ok(())
}

/// Seed 002, Task 3's checks of the operator's Deployment as the install (dist/install.yaml)
/// created it: found by the seed's name, rolled out, its pods found by the seed's label. The
/// stand-in kubelet makes the pods Ready without running them, so the seed's `kubectl logs`
/// and `kubectl exec` have nothing to answer here (docs/seed-walkthroughs.md).
#[tokio::test]
async fn seed_002_task_3_finds_the_operators_deployment_rolled_out_with_its_pods() -> Result<()> {
    if !e2e::enabled("seed-002-deployment") {
        return Ok(());
    }
    let namespace = ["-n", "trading-platform"];
    let get = run(
        &[
            &["get", "deployment", "trading-operator-controller"],
            &namespace[..],
        ]
        .concat(),
        None,
    )?;
    ensure!(get.contains("trading-operator-controller"), "{get}");
    let rollout = run(
        &[
            &[
                "rollout",
                "status",
                "deployment/trading-operator-controller",
                "--timeout=120s",
            ],
            &namespace[..],
        ]
        .concat(),
        None,
    )?;
    ensure!(rollout.contains("successfully rolled out"), "{rollout}");
    let pods = run(
        &[
            &["get", "pods", "-l", "app=trading-operator", "-o", "name"],
            &namespace[..],
        ]
        .concat(),
        None,
    )?;
    ensure!(
        pods.lines()
            .filter(|l| l.starts_with("pod/trading-operator-controller-"))
            .count()
            >= 1,
        "{pods}"
    );
    Ok(())
}

/// The seed's `test-deletion-algo` with `dailyLossLimit` as given: 100 is below the seed's
/// own schema minimum (10000), so the seed's manifest is refused as written.
fn deletion_algo(namespace: &str, daily_loss_limit: u32) -> String {
    format!(
        "apiVersion: fintech.io/v1
kind: TradingAlgorithm
metadata:
  name: test-deletion-algo
  namespace: {namespace}
spec:
  marketData:
    sources: [\"NYSE\"]
    updateFrequency: \"1s\"
    symbols: [\"TEST\"]
  riskLimits:
    maxPositionSize: 1000
    dailyLossLimit: {daily_loss_limit}
  scalingPolicy:
    minReplicas: 1
    maxReplicas: 2
    targetCPUUtilization: 80
    scaleUpPolicy: \"conservative\"
  tradingStrategy:
    algorithm: \"momentum\"
    parameters:
      test: \"true\"
"
    )
}

/// A seed sample's manifest placed in `ns`.
fn sample_in(ns: &TestNamespace, file: &str) -> Result<String> {
    let path = e2e::manifests::deploy_dir().join(format!("samples/{file}.yaml"));
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    Ok(text.replace(
        "namespace: trading-platform",
        &format!("namespace: {}", ns.name),
    ))
}

/// Seed 002, Tasks 1 and 4, with the operator running: the CRD checks, the sample applied
/// and listed with its columns, the update of Step 3 reaching the children, the deletion of
/// Step 4 (refused as the seed writes it; then finished by the operator's own finalizer, no
/// hand needed), and Step 5's listings by the operator's `managed-by` label.
#[tokio::test]
async fn seed_002_tasks_1_and_4_create_update_list_and_delete_algorithms() -> Result<()> {
    let Some(ns) = trading_algorithm::prepared("seed-002").await? else {
        return Ok(());
    };
    let operator = ns
        .start_operator(&trading_algorithm::OPERATOR, "a", false)
        .await?;
    let n = ns.name.as_str();
    // Task 1.
    run(&["get", "crd", "tradingalgorithms.fintech.io"], None)?;
    run(&["describe", "crd", "tradingalgorithms.fintech.io"], None)?;
    run(
        &["apply", "-f", "-"],
        Some(&sample_in(&ns, "sample-momentum-algo")?),
    )?;
    let listed = run(&["get", "tradingalgorithms", "-n", n], None)?;
    ensure!(
        listed.contains("sample-momentum-algo") && listed.contains("STRATEGY"),
        "{listed}"
    );
    run(
        &[
            "describe",
            "tradingalgorithm",
            "sample-momentum-algo",
            "-n",
            n,
        ],
        None,
    )?;

    // Task 4, Steps 1 and 3.
    run(
        &["apply", "-f", "-"],
        Some(&sample_in(&ns, "momentum-trader-prod")?),
    )?;
    let seed = "momentum-trader-prod";
    ns.status_until(
        TRADING_ALGORITHM,
        seed,
        "Active",
        Duration::from_secs(120),
        |s| s["phase"] == "Active",
    )
    .await?;
    let update = r#"{"spec":{"scalingPolicy":{"maxReplicas":20,"targetCPUUtilization":50},"riskLimits":{"maxPositionSize":7500000}}}"#;
    run(
        &[
            "patch",
            "tradingalgorithm",
            seed,
            "-n",
            n,
            "--type=merge",
            "-p",
            update,
        ],
        None,
    )?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ns.client.clone(), n);
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), n);
    until(
        "the update in the children",
        Duration::from_secs(60),
        || async {
            let hpa = hpas
                .get(&format!("{seed}-hpa"))
                .await?
                .spec
                .unwrap_or_default();
            let deployment = deployments.get(&format!("{seed}-deployment")).await?;
            let position = operator_harness::env_value(&deployment, "MAX_POSITION_SIZE");
            Ok((hpa.max_replicas == 20 && position.as_deref() == Some("7500000")).then_some(()))
        },
    )
    .await?;

    // Step 4: refused as written, with the field named; at the seed's minimum it runs, and
    // deleting it completes by itself (the operator's finalizer is the seed's name).
    let refused = kubectl(&["apply", "-f", "-"], Some(&deletion_algo(n, 100)))?;
    match refused {
        Err(why) => ensure!(why.contains("spec.riskLimits.dailyLossLimit"), "{why}"),
        Ok(out) => bail!("dailyLossLimit 100 was admitted: {out}"),
    }
    run(&["apply", "-f", "-"], Some(&deletion_algo(n, 10000)))?;
    ns.status_until(
        TRADING_ALGORITHM,
        "test-deletion-algo",
        "running",
        Duration::from_secs(60),
        |s| s["phase"] == "Active",
    )
    .await?;
    let finalizer = r#"{"metadata":{"finalizers":["fintech.io/trading-algorithm-cleanup"]}}"#;
    run(
        &[
            "patch",
            "tradingalgorithm",
            "test-deletion-algo",
            "-n",
            n,
            "--type=merge",
            "-p",
            finalizer,
        ],
        None,
    )?;
    run(
        &[
            "delete",
            "tradingalgorithm",
            "test-deletion-algo",
            "-n",
            n,
            "--timeout=60s",
        ],
        None,
    )?;
    ensure!(
        kubectl(
            &["get", "tradingalgorithm", "test-deletion-algo", "-n", n],
            None
        )?
        .is_err(),
        "deleted without removing the finalizer by hand"
    );

    // Step 5.
    run(&["get", "tradingalgorithms", "-n", n, "-o", "wide"], None)?;
    let label = "app.kubernetes.io/managed-by=trading-operator";
    for kind in ["deployments", "services", "hpa"] {
        let listed = run(&["get", kind, "-n", n, "-l", label], None)?;
        ensure!(listed.contains(seed), "{kind}: {listed}");
    }
    operator.assert_no_rbac_denials()?;
    ns.cleanup().await
}
