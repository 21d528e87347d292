//! The backup Job's work, as `payment-service-operator backup` runs it in the operator's own
//! image: against testkit with the seed converged, into a directory standing for the claim.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use payment_service::backup::{Export, export};

use crate::common::{NS, Payments, SEED, Setup, seed_sample, start};

fn claim(test: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ps-backup-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[tokio::test]
async fn the_cron_job_runs_the_operators_own_image() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;
    let cron = h
        .get("batch/v1", "cronjobs", &format!("{SEED}-backup"))
        .context("backup cronjob")?;
    let container = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    // Out of cluster (no Pod of its own) and with no backupImage: this release's image.
    assert_eq!(container["image"], payment_service::RELEASE_IMAGE);
    assert_eq!(container["args"][0], "backup");
    assert!(container.get("command").is_none());
    Ok(())
}

#[tokio::test]
async fn an_export_holds_the_service_as_written_and_its_children_and_retention_prunes_only_exports()
-> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&seed_sample()?).await?;
    let to = claim("export")?;
    for old in ["20200101T020000Z", "20200102T020000Z.partial", "lost+found"] {
        std::fs::create_dir_all(to.join(old))?;
    }
    std::fs::write(to.join("README"), "kept")?;

    let run = Export {
        service: SEED.into(),
        namespace: Some(NS.into()),
        to: to.clone(),
        retention_days: 30,
    };
    let done = run.run(h.client()).await?;
    assert_eq!(
        done.removed,
        ["20200101T020000Z", "20200102T020000Z.partial"],
        "old exports and an unfinished one go"
    );
    assert!(to.join("lost+found").is_dir() && to.join("README").is_file());

    let service = std::fs::read_to_string(done.dir.join("paymentservice.yaml"))?;
    let service = operator_core::manifests::documents(&service)?;
    assert_eq!(service.len(), 1);
    assert_eq!(service[0]["kind"], "PaymentService");
    assert_eq!(service[0]["apiVersion"], "payments.io/v2");
    assert_eq!(service[0]["spec"]["version"], "1.5.0");
    assert!(service[0].get("status").is_none());
    for server_set in ["uid", "resourceVersion", "managedFields", "finalizers"] {
        assert!(
            service[0]["metadata"].get(server_set).is_none(),
            "{server_set}"
        );
    }

    let children = std::fs::read_to_string(done.dir.join("children.yaml"))?;
    let children = operator_core::manifests::documents(&children)?;
    assert_eq!(children.len(), done.children);
    let kinds: Vec<&str> = children.iter().filter_map(|c| c["kind"].as_str()).collect();
    for kind in [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceAccount",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert!(
        !std::fs::read_dir(&to)?
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(".partial")),
        "the export was renamed once complete"
    );
    std::fs::remove_dir_all(&to)?;
    Ok(())
}

#[tokio::test]
async fn a_missing_service_fails_the_run_and_writes_nothing() -> Result<()> {
    let h = start(Setup::default()).await?;
    let to = claim("missing")?;
    let failed = export(
        &h.client(),
        NS,
        "gone",
        &to,
        "2026-12-07T02:00:00Z".parse()?,
    )
    .await;
    let message = failed.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("PaymentService payments/gone"),
        "{message}"
    );
    assert_eq!(std::fs::read_dir(&to)?.count(), 0);
    std::fs::remove_dir_all(&to)?;
    Ok(())
}
