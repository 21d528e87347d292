//! The restricted Pod Security Standard every pod an operator creates runs under, and
//! acceptable to OpenShift's `restricted-v2` SCC: no fixed user, group or `fsGroup` unless the
//! operator's config names one (`runAsUser`), since OpenShift assigns each namespace its own
//! range and refuses a pod that names an id outside it; no capabilities, so no port below 1024.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..SeccompProfile::default()
    }
}

/// Restricted pod security for a pod: non-root, the runtime's default seccomp profile, and
/// `run_as` as user, group and `fsGroup` when given — else the image's own non-root user
/// (which the kubelet checks is numeric and not 0), or the one OpenShift assigns.
pub fn restricted_pod_security(run_as: Option<i64>) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: run_as,
        run_as_group: run_as,
        fs_group: run_as,
        seccomp_profile: Some(runtime_default_seccomp()),
        ..PodSecurityContext::default()
    }
}

/// Restricted pod security for a container: non-root, no privilege escalation, no
/// capabilities, read-only root filesystem, the runtime's default seccomp profile. Its user
/// is the pod's.
pub fn restricted_container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}
