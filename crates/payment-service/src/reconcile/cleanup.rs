//! Before a PaymentService goes: stop its Deployments, keep its backups, record it.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Resource, ResourceExt};
use operator_core::Result;
use operator_core::apply::ADOPT_ANNOTATION;
use operator_core::finalizer::{Cleanup, Deletion};
use serde_json::json;

use super::Ctx;
use crate::crd::{CleanupReport, PaymentService, PaymentServiceStatus};
use crate::resources::backup_volume_name;

/// Stops every Deployment of the service and keeps the backup claim out of the garbage
/// collector's reach: the Deployments deleted, and whether a claim was kept.
async fn stop_and_keep_backups(ps: &PaymentService, ctx: &Ctx) -> Result<(Vec<String>, bool)> {
    let deleted = ctx
        .children
        .of::<Deployment>()?
        .prune(ps, &BTreeSet::new())
        .await?;
    let claims = ctx.api_beside::<PersistentVolumeClaim, _>(ps);
    let claim = backup_volume_name(&ps.name_any());
    let kept = match claims.get_metadata_opt(&claim).await? {
        Some(meta)
            if meta
                .owner_references()
                .iter()
                .any(|o| Some(&o.uid) == ps.meta().uid.as_ref()) =>
        {
            // Released with an explicit hand-over to a PaymentService created again under the
            // same name, which adopts it (and nothing else can). The UID makes the server
            // refuse the patch should the claim have been replaced.
            let handover = format!("PaymentService/{}", ps.name_any());
            let patch = json!({"metadata": {
                "uid": meta.metadata.uid,
                "ownerReferences": null,
                "annotations": {ADOPT_ANNOTATION: handover},
            }});
            claims
                .patch(&claim, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            true
        }
        // Someone else's claim of that name holds none of this service's backups.
        Some(_) | None => false,
    };
    Ok((deleted, kept))
}

/// Before the PaymentService goes: stop every Deployment of it (a canary or idle colour
/// included), keep the backup claim (its owner reference is removed so the garbage collector
/// leaves the exports), record what was done, and forget what was applied. When the whole
/// namespace goes, its children go with it: only the record is kept.
pub(super) async fn cleanup(
    ps: Arc<PaymentService>,
    deletion: Deletion,
    ctx: Ctx,
) -> Result<Cleanup> {
    let name = ps.name_any();
    // A pass that finds the record already written (a cached copy from before the release,
    // or a restart) has nothing left to do but release: the work and its event happened.
    let status = ps.status.clone().unwrap_or_default();
    if status.cleanup.is_none() {
        let claim = backup_volume_name(&name);
        let (deleted, kept) = match deletion {
            Deletion::Resource => stop_and_keep_backups(&ps, &ctx).await?,
            Deletion::Namespace => (Vec::new(), false),
        };
        // The record of what deletion did (and where the backups are): kept in status and the
        // operator's log, which a namespace being deleted still accepts, then announced.
        let report = CleanupReport {
            deleted_deployments: deleted,
            kept_backup_claim: kept.then(|| claim.clone()),
            completed_at: Time(ctx.now()),
        };
        let next = PaymentServiceStatus {
            cleanup: Some(report.clone()),
            ..status
        };
        ctx.write_status(&*ps, &next).await?;
        let mut note = format!(
            "deleted Deployments [{}]",
            report.deleted_deployments.join(", ")
        );
        if let Some(claim) = &report.kept_backup_claim {
            note.push_str(&format!(
                "; kept PersistentVolumeClaim {claim} with the backups (delete it by hand when they are no longer needed)"
            ));
        }
        ctx.events
            .record(&*ps, operator_core::reason!("CleanupDone"), "Delete", note)
            .await;
    }

    Ok(Cleanup::Done)
}
