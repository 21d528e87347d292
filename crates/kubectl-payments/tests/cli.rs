//! `kubectl payments` against a running operator on testkit: `status` shows what the
//! resource's status says and the last Warning about it; `pause` returns once the operator
//! reports `Paused` (naming this tool), and a spec change then reaches no child until
//! `resume`. `drain|restore` of a clearing adapter's partners is in `cli/drain.rs`.

#[path = "cli/backup.rs"]
mod backup;
#[path = "cli/drain.rs"]
mod drain;

use std::time::Duration;

use anyhow::Result;
use batch_processor::crd::BatchProcessor;
use kube::CustomResourceExt;
use kubectl_payments::request::Target;
use kubectl_payments::{CliError, actions, kinds, pause, status, why};
use operator_harness::Harness;
use serde_json::json;

const NS: &str = "payments";
const SEED: &str = "daily-payment-batch";
const WAIT: Duration = Duration::from_secs(30);

async fn running_batch() -> Result<Harness> {
    let harness = Harness::builder(batch_processor::controllers)
        .crd(BatchProcessor::crd())
        .namespace(NS)
        .resource("payments.io/v1", "batchprocessors")
        .start()
        .await?;
    harness
        .create_ready::<BatchProcessor>(operator_harness::sample(SEED)?)
        .await?;
    Ok(harness)
}

fn schedule(harness: &Harness) -> String {
    let cronjob = harness
        .get("batch/v1", "cronjobs", SEED)
        .unwrap_or_default();
    cronjob["spec"]["schedule"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_each_resource_with_its_readiness_and_last_warning() -> Result<()> {
    let harness = running_batch().await?;
    let client = harness.client();
    let rows = status::rows(&client, None).await?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(
        (row.kind.as_str(), row.name.as_str(), row.ready.as_str()),
        ("BatchProcessor", SEED, "True")
    );
    assert_eq!(row.namespace, NS);

    // An annotation the operator cannot use is warned of; status shows that Warning.
    harness
        .merge::<BatchProcessor>(
            NS,
            SEED,
            json!({"metadata": {"annotations": {"payments.io/paused": "maybe"}}}),
        )
        .await?;
    harness
        .eventually("the AnnotationIgnored warning", |h| {
            !h.events("AnnotationIgnored").is_empty()
        })
        .await?;
    let rows = status::rows(&client, Some(NS)).await?;
    let warning = rows[0].last_warning.clone().expect("a last warning");
    assert_eq!(warning.reason, "AnnotationIgnored");
    assert!(
        warning.note.contains("payments.io/paused=maybe"),
        "{}",
        warning.note
    );
    let table = status::table(&rows, false);
    assert!(table.contains("last warning"), "{table}");
    assert!(status::rows(&client, Some("elsewhere")).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_every_change_until_resume() -> Result<()> {
    let harness = running_batch().await?;
    let client = harness.client();
    let (kind, name) = kinds::target(&format!("bp/{SEED}"))?;
    let before = schedule(&harness);

    let target = Target {
        kind: &kind,
        namespace: NS,
        name: &name,
    };
    let answer = pause::set(&client, target, true, WAIT).await?;
    assert!(
        answer.contains("paused by kubectl-payments at "),
        "{answer}"
    );

    harness
        .merge::<BatchProcessor>(NS, SEED, json!({"spec": {"schedule": "15 3 * * *"}}))
        .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        schedule(&harness),
        before,
        "the change reached the CronJob while paused"
    );
    let rows = status::rows(&client, Some(NS)).await?;
    assert!(rows[0].paused.is_some(), "{rows:?}");

    let answer = pause::set(&client, target, false, WAIT).await?;
    assert!(answer.starts_with("resumed: Ready="), "{answer}");
    harness
        .eventually("the change applied once resumed", |h| {
            schedule(h) == "15 3 * * *"
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_what_does_not_exist_says_so() -> Result<()> {
    let harness = running_batch().await?;
    let (kind, _) = kinds::target("bp/x")?;
    let target = Target {
        kind: &kind,
        namespace: NS,
        name: "nope",
    };
    let error = pause::set(&harness.client(), target, true, WAIT)
        .await
        .unwrap_err();
    assert!(matches!(error, CliError::NotFound { .. }), "{error}");
    assert_eq!(error.to_string(), "BatchProcessor payments/nope not found");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_shows_conditions_events_children_and_advice() -> Result<()> {
    let harness = running_batch().await?;
    let (kind, name) = kinds::target(&format!("batchprocessor/{SEED}"))?;
    let text = why::explain(&harness.client(), &kind, NS, &name).await?;
    assert!(
        text.starts_with(&format!("BatchProcessor {NS}/{SEED}")),
        "{text}"
    );
    assert!(text.contains("  Ready=True "), "{text}");
    assert!(
        text.contains(&format!("  CronJob/{SEED}: not scheduled yet")),
        "{text}"
    );
    assert!(text.contains(" Normal "), "the operator's events: {text}");
    assert!(text.trim_end().ends_with("Ready: nothing to do."), "{text}");

    let (kind, _) = kinds::target("bp/x")?;
    let missing = why::explain(&harness.client(), &kind, NS, "nope").await;
    assert!(matches!(missing, Err(CliError::NotFound { .. })));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_returns_the_job_the_operator_started() -> Result<()> {
    let harness = running_batch().await?;
    let (kind, name) = kinds::target(&format!("bp/{SEED}"))?;
    let target = Target {
        kind: &kind,
        namespace: NS,
        name: &name,
    };
    let answer = actions::run_now(&harness.client(), target, WAIT).await?;
    let job = answer
        .strip_prefix("started Job ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default();
    assert!(harness.get("batch/v1", "jobs", job).is_some(), "{answer}");

    // Trading has nothing to resume when it is not halted, and says so.
    let (kind, _) = kinds::target("ta/x")?;
    let target = Target {
        kind: &kind,
        namespace: NS,
        name: &name,
    };
    let refused = actions::resume_trading(&harness.client(), target, WAIT).await;
    assert!(
        matches!(refused, Err(CliError::NotFound { .. })),
        "{refused:?}"
    );
    Ok(())
}

/// Completion as a user gets it: kubectl itself (1.26+) finds `kubectl_complete-payments`
/// (the script `completion` prints) beside the plugin on PATH, and completes `KIND/` with the
/// names of that kind, read from the API server (testkit on loopback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_completes_kinds_and_names_through_the_completion_script() -> Result<()> {
    let server = testkit::ApiServer::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    server.load_manifests(&root.join("deploy/crds"))?;
    server.load_manifests(&root.join("deploy/namespaces"))?;
    let batch = operator_harness::sample_of_kind(SEED, "BatchProcessor")?;
    server.create_from_yaml(&serde_json::to_string(&batch)?)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(testkit::loopback::serve(server, listener, async {
        let _ = stopped.await;
    }));

    // A directory on PATH holding the plugin and the script `completion` printed.
    let bin = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("completion-bin");
    let _ = std::fs::remove_dir_all(&bin);
    std::fs::create_dir_all(&bin)?;
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_kubectl-payments"),
        bin.join("kubectl-payments"),
    )?;
    let plugin = std::process::Command::new(bin.join("kubectl-payments"))
        .arg("completion")
        .output()?;
    assert!(plugin.status.success(), "{plugin:?}");
    let script = bin.join("kubectl_complete-payments");
    std::fs::write(&script, &plugin.stdout)?;
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let kubeconfig = bin.join("kubeconfig");
    std::fs::write(&kubeconfig, testkit::loopback::kubeconfig(addr))?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let complete = move |words: &[&str]| -> Result<String> {
        let output = std::process::Command::new("kubectl")
            .args(["__complete", "payments"])
            .args(words)
            .env("PATH", &path)
            .env("KUBECONFIG", &kubeconfig)
            .output()?;
        anyhow::ensure!(output.status.success(), "kubectl __complete: {output:?}");
        Ok(String::from_utf8(output.stdout)?)
    };

    let subcommands = tokio::task::spawn_blocking({
        let complete = complete.clone();
        move || complete(&["r"])
    })
    .await??;
    assert!(subcommands.contains("run-now\t"), "{subcommands}");
    assert!(subcommands.contains("resume-trading\t"), "{subcommands}");
    let kinds = tokio::task::spawn_blocking({
        let complete = complete.clone();
        move || complete(&["run-now", ""])
    })
    .await??;
    assert!(kinds.starts_with("bp/\tBatchProcessor\n"), "{kinds}");
    let names =
        tokio::task::spawn_blocking(move || complete(&["-n", NS, "run-now", "bp/d"])).await??;
    assert!(names.contains(&format!("bp/{SEED}\n")), "{names}");

    let _ = stop.send(());
    serving.await??;
    Ok(())
}
