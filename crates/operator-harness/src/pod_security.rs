//! What a pod must be to run under the restricted Pod Security Standard and OpenShift's
//! `restricted-v2` SCC, as a check on the pod templates an operator writes.

use serde_json::Value;

/// Where the pod templates are in the children that start pods.
pub const POD_TEMPLATES: &[(&str, &str, &str)] = &[
    ("apps/v1", "deployments", "/spec/template/spec"),
    (
        "batch/v1",
        "cronjobs",
        "/spec/jobTemplate/spec/template/spec",
    ),
    ("batch/v1", "jobs", "/spec/template/spec"),
];

/// Every way `pod` (a PodSpec as JSON) would be refused by the restricted profile or by
/// `restricted-v2`: not non-root, no `RuntimeDefault` seccomp, a host namespace, a fixed user,
/// group or `fsGroup` (OpenShift assigns them from the namespace's range), privilege
/// escalation, a capability kept or added, a host port or a port below 1024.
pub fn restricted_violations(pod: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let security = &pod["securityContext"];
    if security["runAsNonRoot"] != true {
        found.push("securityContext.runAsNonRoot is not true".to_string());
    }
    if security["seccompProfile"]["type"] != "RuntimeDefault" {
        found.push("securityContext.seccompProfile.type is not RuntimeDefault".to_string());
    }
    for fixed in ["runAsUser", "runAsGroup", "fsGroup"] {
        if !security[fixed].is_null() {
            found.push(format!(
                "securityContext.{fixed} is fixed at {}",
                security[fixed]
            ));
        }
    }
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[host] == true {
            found.push(format!("{host} is true"));
        }
    }
    let containers = ["initContainers", "containers"]
        .into_iter()
        .flat_map(|list| pod[list].as_array().cloned().unwrap_or_default());
    for container in containers {
        let name = container["name"].as_str().unwrap_or("?").to_string();
        let security = &container["securityContext"];
        if security["allowPrivilegeEscalation"] != false {
            found.push(format!("{name}: allowPrivilegeEscalation is not false"));
        }
        if security["privileged"] == true {
            found.push(format!("{name}: privileged"));
        }
        let dropped = security["capabilities"]["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|c| c == "ALL"));
        if !dropped {
            found.push(format!("{name}: capabilities do not drop ALL"));
        }
        if security["capabilities"]["add"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            found.push(format!("{name}: capabilities added"));
        }
        for fixed in ["runAsUser", "runAsGroup"] {
            if !security[fixed].is_null() {
                found.push(format!("{name}: {fixed} is fixed at {}", security[fixed]));
            }
        }
        for port in container["ports"].as_array().into_iter().flatten() {
            if port["containerPort"].as_i64().is_some_and(|p| p < 1024) {
                found.push(format!(
                    "{name}: port {} is below 1024",
                    port["containerPort"]
                ));
            }
            if !port["hostPort"].is_null() {
                found.push(format!("{name}: hostPort {}", port["hostPort"]));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use operator_core::pod_security::{restricted_container_security, restricted_pod_security};
    use serde_json::json;

    fn pod(run_as: Option<i64>, port: i32) -> Value {
        json!({
            "securityContext": restricted_pod_security(run_as),
            "containers": [{
                "name": "main",
                "securityContext": restricted_container_security(),
                "ports": [{"containerPort": port}],
            }],
        })
    }

    #[test]
    fn the_shared_profile_passes_and_each_breach_is_named() {
        assert_eq!(
            restricted_violations(&pod(None, 8080)),
            Vec::<String>::new()
        );
        assert_eq!(
            restricted_violations(&pod(Some(65532), 80)),
            [
                "securityContext.runAsUser is fixed at 65532",
                "securityContext.runAsGroup is fixed at 65532",
                "securityContext.fsGroup is fixed at 65532",
                "main: port 80 is below 1024",
            ]
        );
        let mut escalating = pod(None, 8080);
        escalating["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
        escalating["hostNetwork"] = json!(true);
        assert_eq!(
            restricted_violations(&escalating),
            [
                "hostNetwork is true",
                "main: allowPrivilegeEscalation is not false"
            ]
        );
    }
}
