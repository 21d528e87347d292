//! The orchestrator's own identity: a ServiceAccount named after it, allowed to read and
//! write its `<name>-inflight` ConfigMap and nothing else.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;

use super::{in_flight_name, meta};
use crate::crd::SagaOrchestrator;

pub fn desired_rbac(
    so: &SagaOrchestrator,
    defaults: &WorkloadDefaults,
) -> (ServiceAccount, Role, RoleBinding) {
    let name = so.name_any();
    let grant = in_flight_name(&name);
    let account = ServiceAccount {
        metadata: meta(name.clone(), so, defaults),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    };
    let role = Role {
        metadata: meta(grant.clone(), so, defaults),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            resource_names: Some(vec![grant.clone()]),
            verbs: vec!["get".into(), "patch".into()],
            ..PolicyRule::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: meta(grant.clone(), so, defaults),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: grant,
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name,
            namespace: so.namespace(),
            ..Subject::default()
        }]),
    };
    (account, role, binding)
}
