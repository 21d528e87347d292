//! The PaymentService operator: seed 000 made real.
//!
//! For each `PaymentService` it runs the service's Deployment(s), Service, autoscaler,
//! disruption budget, service account, ServiceMonitor and backup CronJob; rolls out new
//! versions with a rolling update, a canary or blue-green, and rolls back the ones that do not
//! become available; and reports phase, version and conditions.

mod admission;
pub mod backup;
mod bench;
pub mod crd;
mod metrics;
mod reconcile;
mod resources;
mod rollout;
mod validate;

pub use rollout::{ABORT_ANNOTATION, PROMOTE_ANNOTATION};

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use operator_core::descriptor::{Converged, ServedResource};
use operator_core::prometheus::MetricsQuery;
use operator_core::runtime::Runtime;
use operator_core::runtime::config::OperatorSettings;
use operator_core::{ChildKinds, ChildWatches, Prune};
use serde::Deserialize;

use crate::crd::PaymentService;
use crate::metrics::PaymentMetrics;
use crate::reconcile::PaymentOperator;
use operator_core::annotations::ReadAnnotation;
use operator_core::monitoring::ServiceMonitor;

/// The annotations a PaymentService's operator reads (see docs/payment-service.md), and the
/// one the conversion webhook writes to keep a v1 object's fields through v2.
pub const ANNOTATIONS: &[ReadAnnotation] = &[
    ReadAnnotation {
        key: PROMOTE_ANNOTATION,
        accepts: "the version waiting on the idle colour (a label value, such as 1.5.0)",
        valid: |v| operator_core::validation::label_value(v, false).is_ok(),
    },
    ReadAnnotation {
        key: ABORT_ANNOTATION,
        accepts: "the version rolling out, to give up on (a label value, such as 1.6.0)",
        valid: |v| operator_core::validation::label_value(v, false).is_ok(),
    },
    ReadAnnotation {
        key: crd::conversion::CONVERSION_DATA,
        accepts: "what the conversion webhook writes",
        valid: |_| true,
    },
];

operator_core::operator! {
    binary: ("payment-service-operator", "paymentService", OperatorSettings::of::<Settings>()),
    resources: &[ServedResource::of::<PaymentService>(Converged::ReadyIn("Running"))
        .in_versions(crd::v1::crd, |object, version| {
            crd::conversion::convert(object, version).map_err(|e| e.to_string())
        })],
    controllers: |rt| controllers(rt, rt.prometheus()),
    metrics: PaymentMetrics,
}

/// The operator's own fields of its `paymentService:` config section, beside the workload
/// defaults every operator reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Image of the backup Jobs, which run `payment-service-operator backup`: by default the
    /// image this operator runs (see [`reconcile::PaymentOperator::backup_image`]). Set it
    /// only to run another build of this operator.
    pub backup_image: Option<String>,
}

/// This release's image, for the backup Jobs of an operator that does not run in a Pod (out
/// of cluster, the demo) and names no `backupImage`.
pub const RELEASE_IMAGE: &str = concat!(
    "payments-engine/payment-service-operator:",
    env!("CARGO_PKG_VERSION")
);

/// The child kinds of a PaymentService, declared once: watched as metadata, owned, pruned.
/// The backup claim is never pruned (it holds the exports); ServiceMonitors exist only
/// where the Prometheus Operator is installed. The backup CronJob's state (its last
/// successful run) is cached too, for the pass to read.
pub fn child_kinds(rt: &Runtime) -> (ChildKinds, ChildWatches) {
    rt.child_kinds(IDENTITY)
        .kinds::<(Deployment, Service, HorizontalPodAutoscaler)>()
        .kinds::<(PodDisruptionBudget, ServiceAccount, CronJob)>()
        .kinds::<(RoleBinding, Role)>()
        .kind::<PersistentVolumeClaim>(Prune::Never)
        .kind::<NetworkPolicy>(Prune::Yes)
        .optional_kind::<ServiceMonitor>()
        .observed::<CronJob>()
        .build()
}

/// The controller for `PaymentService`.
pub fn controllers(
    rt: &Runtime,
    prometheus: Option<Arc<dyn MetricsQuery>>,
) -> Vec<BoxFuture<'static, ()>> {
    let operator = PaymentOperator {
        settings: rt.config().own.get::<Settings>(),
        backup_image: Arc::default(),
        metrics: PaymentMetrics::register(rt.metrics()),
        prometheus,
    };
    let controller =
        rt.operator_controller::<PaymentService, _>(IDENTITY, operator, child_kinds(rt));
    vec![controller.run(reconcile::reconcile).boxed()]
}
