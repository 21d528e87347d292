//! The ClearingAdapter's admission webhooks: `validate.rs`'s rules at the door, seed 001's
//! `ValidateUpdate` (no lowering of the pod floor under high load, for spec edits and for
//! `kubectl scale` alike), and seed 001's `Default` written into the object.
//!
//! The load is read from the cluster as reconcile reads it (the adapter's own autoscaler
//! and Deployment); reconcile refuses the same downscale if it gets in while the webhook
//! is down.

use futures::future::BoxFuture;
use kube::Api;
use kube::core::admission::Operation;
use operator_core::FieldError;
use operator_core::admission::{Admitted, Review, Verdict, check_spec};

use crate::crd::{ClearingAdapter, ClearingAdapterSpec};
use crate::reconcile::observe::workload_of;
use crate::validate;

pub const ADMISSION: &[Admitted] = &[Admitted {
    subresources: &["scale"],
    validate: admit,
    ..Admitted::of::<ClearingAdapter>()
}];

fn admit<'a>(review: &'a Review, client: &'a kube::Client) -> BoxFuture<'a, Verdict> {
    Box::pin(async move {
        if review.sub_resource.as_deref() == Some("scale") {
            return scaled(review, client).await;
        }
        let verdict = check_spec::<ClearingAdapterSpec>(review);
        if !verdict.errors.is_empty() || review.operation != Operation::Update {
            return verdict;
        }
        let (Ok(new), Some(old)) = (
            review.spec::<ClearingAdapterSpec>(),
            review
                .old_object
                .clone()
                .and_then(|o| serde_json::from_value::<ClearingAdapter>(o).ok()),
        ) else {
            return verdict;
        };
        let errors = under_load(&old, &new, client).await;
        Verdict::from_errors(errors, verdict.warnings)
    })
}

/// `kubectl scale`: the Scale's replicas become the adapter's `spec.replicas`.
async fn scaled(review: &Review, client: &kube::Client) -> Verdict {
    let replicas = |object: &Option<serde_json::Value>| {
        object
            .as_ref()
            .and_then(|o| o["spec"]["replicas"].as_i64())
            .and_then(|r| i32::try_from(r).ok())
    };
    let (Some(wanted), Some(namespace)) = (replicas(&review.object), &review.namespace) else {
        return Verdict::allow();
    };
    let adapters = Api::<ClearingAdapter>::namespaced(client.clone(), namespace);
    let old = match adapters.get_opt(&review.name).await {
        Ok(Some(old)) => old,
        Ok(None) => return Verdict::allow(),
        Err(e) => {
            return Verdict::deny(vec![FieldError::new(
                "spec.replicas",
                format!("cannot read the adapter to check its load ({e}); try again"),
            )]);
        }
    };
    let mut new = old.spec.clone();
    new.replicas = wanted;
    Verdict::deny(under_load(&old, &new, client).await)
}

async fn under_load(
    old: &ClearingAdapter,
    new: &ClearingAdapterSpec,
    client: &kube::Client,
) -> Vec<FieldError> {
    if new.min_replicas() >= old.spec.min_replicas() {
        return Vec::new();
    }
    match workload_of(old, client).await {
        Ok(workload) => validate::validate_update(old.spec.min_replicas(), new, &workload.load),
        Err(e) => vec![FieldError::new(
            "spec.replicas",
            format!("cannot read the adapter's load to allow a scale-down ({e}); try again"),
        )],
    }
}
