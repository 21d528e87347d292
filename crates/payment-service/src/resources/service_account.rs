//! The pods' ServiceAccount when `security.rbac` is on. Its token is not mounted: the service
//! does not call the Kubernetes API; the account exists to carry workload identity (e.g. a
//! cloud identity annotation added by the platform).

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::ObjectMeta;
use operator_core::builder::WorkloadDefaults;

use super::child_labels;
use crate::crd::PaymentService;

pub fn desired_service_account(
    ps: &PaymentService,
    name: &str,
    defaults: &WorkloadDefaults,
) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(child_labels(ps, defaults)),
            ..ObjectMeta::default()
        },
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}
