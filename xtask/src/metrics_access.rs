//! `deploy/<package>/metrics-access.yaml`, part of the default install: what the operator's
//! reviewed `/metrics` needs (`--metrics-secure`, on in a pod): the right to ask the API server
//! who a scraper's token is and whether it may `get /metrics`, and the ClusterRole a platform
//! team binds its Prometheus to.

use std::collections::BTreeMap;

use anyhow::Result;
use operator_core::OperatorDescriptor;
use serde_json::json;

use crate::webhooks::{Base, yaml_documents};

/// The ClusterRole that lets a scraper read the operator's metrics.
pub fn reader_role(operator: &OperatorDescriptor) -> String {
    format!("{}-metrics-reader", operator.binary_name())
}

pub fn render(operator: &OperatorDescriptor, base: &Base) -> Result<BTreeMap<String, String>> {
    let manager = operator.binary_name();
    let reviews = format!("{manager}-metrics-auth");
    let labels = json!({"app.kubernetes.io/name": operator.package(), "app.kubernetes.io/component": "metrics"});
    let objects = [
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": reviews, "labels": labels},
            "rules": [
                {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
                {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": reviews, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": reviews},
            "subjects": [{"kind": "ServiceAccount", "name": base.service_account, "namespace": base.namespace}],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": reader_role(operator), "labels": labels},
            "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}],
        }),
    ];
    let mut text = String::from(
        "# /metrics is served over HTTPS to reviewed tokens only (--metrics-secure, on in a pod):\n\
         # the operator asks the API server who each scraper is (TokenReview) and whether it may\n\
         # get /metrics (SubjectAccessReview), answers kept a minute per token. Bind your\n\
         # Prometheus' ServiceAccount to the metrics-reader ClusterRole (deploy/monitoring does,\n\
         # for kube-prometheus' monitoring/prometheus-k8s).\n",
    );
    text.push_str(&yaml_documents(&objects)?);
    Ok(BTreeMap::from([(
        format!("{}/metrics-access.yaml", operator.package()),
        text,
    )]))
}
