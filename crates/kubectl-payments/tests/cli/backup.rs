//! `kubectl payments backup` then `restore` against the batch operator on testkit: the
//! backup holds the resource as its owner wrote it and names its Secrets without their
//! content; after the resource is deleted, a restore brings it back and the operator rebuilds
//! its children; a second restore changes nothing, and a dry run says what it would do.

use std::time::Duration;

use anyhow::{Context as _, Result};
use kube::api::DeleteParams;
use kubectl_payments::{backup, kinds, restore};

use super::{NS, SEED, running_batch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_resource_comes_back_from_its_backup_with_its_children() -> Result<()> {
    let harness = running_batch().await?;
    let client = harness.client();
    let dir = std::env::temp_dir().join(format!("kubectl-payments-backup-{}", std::process::id()));
    let manifest = backup::backup(&client, Some(NS), &dir).await?;
    let count = |file: &str| {
        manifest
            .objects
            .iter()
            .find(|(f, _)| f == file)
            .map(|(_, n)| *n)
    };
    assert_eq!(count("4-resources.yaml"), Some(1), "{manifest:?}");
    assert!(count("1-crds.yaml").is_some_and(|n| n >= 1), "{manifest:?}");
    assert_eq!(
        manifest.secrets_referenced,
        ["payments/blob-credentials", "payments/sftp-credentials"]
    );
    let resources = std::fs::read_to_string(dir.join("4-resources.yaml"))?;
    let saved = operator_core::manifests::documents(&resources)?;
    let batch = saved.first().context("the BatchProcessor")?;
    assert_eq!(batch["metadata"]["name"], SEED);
    assert!(batch.get("status").is_none() && batch["metadata"].get("uid").is_none());

    let (kind, _) = kinds::target("bp/x")?;
    kind.api(&client, Some(NS))
        .delete(SEED, &DeleteParams::default())
        .await?;
    harness
        .eventually("deleted", |h| {
            h.get("payments.io/v1", "batchprocessors", SEED).is_none()
        })
        .await?;

    let planned = restore::restore(&client, &dir, true).await?;
    assert!(
        planned.contains(&format!("would create BatchProcessor {NS}/{SEED}")),
        "{planned:?}"
    );
    assert!(
        harness
            .get("payments.io/v1", "batchprocessors", SEED)
            .is_none(),
        "a dry run writes nothing"
    );

    let done = restore::restore(&client, &dir, false).await?;
    assert!(
        done.contains(&format!("create BatchProcessor {NS}/{SEED}")),
        "{done:?}"
    );
    assert!(
        done.iter()
            .any(|l| l.starts_with("missing Secret payments/sftp-credentials")),
        "{done:?}"
    );
    harness
        .eventually("its CronJob again", |h| {
            h.get("batch/v1", "cronjobs", SEED).is_some()
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = restore::restore(&client, &dir, false).await?;
    assert!(
        again
            .iter()
            .filter(|l| !l.starts_with("missing Secret"))
            .all(|l| l.starts_with("unchanged ")),
        "{again:?}"
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
