//! `payments.io/abort`: a person gives up on the version rolling out, and the operator goes
//! back to the serving version as it does for a failed rollout.

use anyhow::{Context as _, Result};
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::common::{
    IMAGE_15, IMAGE_16, Payments, SEED, Setup, canary, sample_with, start, upgrade,
};

#[tokio::test]
async fn an_aborted_canary_goes_back_to_the_serving_version_and_stays_there() -> Result<()> {
    let h = start(Setup::default()).await?;
    h.create_running(&sample_with(canary)?).await?;
    let canary = format!("{SEED}-canary");
    h.patch_spec(upgrade("1.6.0")).await?;
    h.eventually("step 1 under way", |h| {
        h.deployment(&canary)
            .is_some_and(|d| d["spec"]["replicas"] == 1)
    })
    .await?;
    assert_eq!(h.image_of(&canary).as_deref(), Some(IMAGE_16));

    let annotate = |value: &str| json!({"metadata": {"annotations": {"payments.io/abort": value}}});
    h.services()
        .patch(
            SEED,
            &PatchParams::default(),
            &Patch::Merge(&annotate("1.6.0")),
        )
        .await?;
    // The status is written after the children in the same pass: wait for both.
    h.eventually("rolled back and reported", |h| {
        h.deployment(&canary).is_none()
            && h.deployment(SEED)
                .is_some_and(|d| d["spec"]["replicas"] == 4)
            && h.status()["failedRollout"].is_object()
    })
    .await?;
    assert_eq!(h.image_of(SEED).as_deref(), Some(IMAGE_15));
    let status = h.status();
    assert_eq!(status["currentVersion"], "1.5.0");
    assert_eq!(status["rollout"], json!(null));
    assert_eq!(
        status["failedRollout"]["message"],
        "aborted with payments.io/abort=1.6.0"
    );
    let degraded = h.condition("Degraded");
    assert_eq!(degraded["reason"], "RolledBack");
    let rolled_back = h.events("RolledBack");
    assert_eq!(rolled_back.len(), 1);
    assert!(
        rolled_back[0]["note"]
            .as_str()
            .is_some_and(|n| n.contains("rolled back to 1.5.0")),
        "{rolled_back:?}"
    );

    // The abort holds: 1.6.0 is not started again while the spec names it.
    h.advance(600);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(h.deployment(&canary).is_none());
    assert_eq!(h.events("RolloutStarted").len(), 2, "1.5.0 and 1.6.0 once");

    // An abort naming another version is said to do nothing, once.
    h.services()
        .patch(
            SEED,
            &PatchParams::default(),
            &Patch::Merge(&annotate("1.7.0")),
        )
        .await?;
    h.eventually("the ignored abort is reported", |h| {
        h.events("AnnotationIgnored").iter().any(|e| {
            e["note"].as_str().is_some_and(|n| {
                n == "annotation payments.io/abort=1.7.0 is ignored: the version rolling out is 1.6.0"
            })
        })
    })
    .await?;

    // A new version rolls out as usual.
    h.patch_spec(upgrade("1.6.1")).await?;
    h.eventually("1.6.1 rolls out", |h| {
        h.status()["rollout"]["target"]["version"] == "1.6.1"
    })
    .await
    .context("a new spec is not held by the abort")
}
