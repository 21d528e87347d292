//! What a child uses of its siblings, read from the child itself: the Deployment an
//! autoscaler resizes, the ConfigMaps and Secrets a pod template mounts, the pods a Service,
//! disruption budget or network policy selects, the Role a binding grants. When a sibling is
//! refused as someone else's object ([`super::Error::ChildNameConflict`]), every child that
//! uses it is withheld: an operator that refused to adopt a Deployment must not aim an
//! autoscaler at it, nor run pods on another team's ConfigMap.
//!
//! Reading the references from the object, instead of having each operator declare them,
//! means a new child or a new mount cannot be forgotten.

use std::collections::BTreeMap;

use serde_json::Value;

/// A child of the pass that was refused as someone else's: what other children may use of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RefusedSibling {
    pub kind: String,
    pub name: String,
    /// The labels of the pods it runs (a workload), for pod selectors.
    pub pod_labels: Option<BTreeMap<String, String>>,
    /// Its own labels, for selectors of that kind (a ServiceMonitor selects Services).
    pub labels: BTreeMap<String, String>,
}

/// A label selector as a child carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Selector {
    match_labels: BTreeMap<String, String>,
    /// Expressions are not evaluated: a selector with any is taken to select (the safe side).
    has_expressions: bool,
}

impl Selector {
    fn of(value: &Value) -> Option<Self> {
        let object = value.as_object()?;
        Some(Self {
            match_labels: string_map(object.get("matchLabels")),
            has_expressions: object
                .get("matchExpressions")
                .and_then(Value::as_array)
                .is_some_and(|e| !e.is_empty()),
        })
    }

    /// A Service's `spec.selector`: labels only.
    fn of_labels(value: &Value) -> Option<Self> {
        value.as_object().map(|_| Self {
            match_labels: string_map(Some(value)),
            has_expressions: false,
        })
    }

    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.has_expressions
            || self
                .match_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// What one child uses of others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Uses {
    /// `(Kind, name)` of each object it names.
    named: Vec<(String, String)>,
    pods: Option<Selector>,
    services: Option<Selector>,
}

impl Uses {
    /// What `object` (a child of kind `kind`, as JSON) uses.
    pub(crate) fn of(kind: &str, object: &Value) -> Self {
        let spec = &object["spec"];
        let mut uses = Self::default();
        match kind {
            "HorizontalPodAutoscaler" => {
                let target = &spec["scaleTargetRef"];
                uses.name(target["kind"].as_str(), target["name"].as_str());
            }
            "Service" => uses.pods = Selector::of_labels(&spec["selector"]),
            "PodDisruptionBudget" => uses.pods = Selector::of(&spec["selector"]),
            "NetworkPolicy" => uses.pods = Selector::of(&spec["podSelector"]),
            "ServiceMonitor" => uses.services = Selector::of(&spec["selector"]),
            "RoleBinding" => {
                let role = &object["roleRef"];
                if role["kind"] == "Role" {
                    uses.name(Some("Role"), role["name"].as_str());
                }
                for subject in object["subjects"].as_array().into_iter().flatten() {
                    if subject["kind"] == "ServiceAccount" {
                        uses.name(Some("ServiceAccount"), subject["name"].as_str());
                    }
                }
            }
            "Role" => {
                // A rule scoped to named objects grants access to exactly those objects.
                for rule in object["rules"].as_array().into_iter().flatten() {
                    for resource in rule["resources"].as_array().into_iter().flatten() {
                        let kind = resource.as_str().and_then(kind_of_plural);
                        for name in rule["resourceNames"].as_array().into_iter().flatten() {
                            uses.name(kind, name.as_str());
                        }
                    }
                }
            }
            _ => {}
        }
        if let Some(pod) = pod_template(kind, object) {
            uses.pod_spec(&pod["spec"]);
        }
        uses
    }

    fn name(&mut self, kind: Option<&str>, name: Option<&str>) {
        if let (Some(kind), Some(name)) = (kind, name) {
            self.named.push((kind.to_string(), name.to_string()));
        }
    }

    /// What a pod uses: mounted and projected volumes, environment sources, its account and
    /// image pull secrets.
    fn pod_spec(&mut self, pod: &Value) {
        for volume in pod["volumes"].as_array().into_iter().flatten() {
            self.name(Some("ConfigMap"), volume["configMap"]["name"].as_str());
            self.name(Some("Secret"), volume["secret"]["secretName"].as_str());
            self.name(
                Some("PersistentVolumeClaim"),
                volume["persistentVolumeClaim"]["claimName"].as_str(),
            );
            for source in volume["projected"]["sources"]
                .as_array()
                .into_iter()
                .flatten()
            {
                self.name(Some("ConfigMap"), source["configMap"]["name"].as_str());
                self.name(Some("Secret"), source["secret"]["name"].as_str());
            }
        }
        let containers = ["initContainers", "containers"]
            .iter()
            .flat_map(|key| pod[*key].as_array().into_iter().flatten());
        for container in containers {
            for env in container["env"].as_array().into_iter().flatten() {
                let from = &env["valueFrom"];
                self.name(Some("ConfigMap"), from["configMapKeyRef"]["name"].as_str());
                self.name(Some("Secret"), from["secretKeyRef"]["name"].as_str());
            }
            for source in container["envFrom"].as_array().into_iter().flatten() {
                self.name(Some("ConfigMap"), source["configMapRef"]["name"].as_str());
                self.name(Some("Secret"), source["secretRef"]["name"].as_str());
            }
        }
        self.name(Some("ServiceAccount"), pod["serviceAccountName"].as_str());
        for secret in pod["imagePullSecrets"].as_array().into_iter().flatten() {
            self.name(Some("Secret"), secret["name"].as_str());
        }
    }

    /// The first refused sibling this child uses, if any.
    pub(crate) fn refused<'a>(&self, refused: &'a [RefusedSibling]) -> Option<&'a RefusedSibling> {
        refused.iter().find(|sibling| {
            self.named
                .iter()
                .any(|(kind, name)| *kind == sibling.kind && *name == sibling.name)
                || self.pods.as_ref().is_some_and(|selector| {
                    sibling
                        .pod_labels
                        .as_ref()
                        .is_some_and(|labels| selector.selects(labels))
                })
                || (sibling.kind == "Service"
                    && self
                        .services
                        .as_ref()
                        .is_some_and(|selector| selector.selects(&sibling.labels)))
        })
    }
}

/// Whether `child` (of kind `kind`, as JSON) uses `other` (of kind `other_kind`, as JSON, as
/// it exists): for tests that check an operator's children never use someone else's object.
pub fn uses(kind: &str, child: &Value, other_kind: &str, other: &Value) -> bool {
    let other = RefusedSibling {
        kind: other_kind.to_string(),
        name: other["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        pod_labels: pod_labels(other_kind, other),
        labels: string_map(other["metadata"].get("labels")),
    };
    Uses::of(kind, child).refused(&[other]).is_some()
}

/// The pod template of a workload kind, where it has one.
fn pod_template<'a>(kind: &str, object: &'a Value) -> Option<&'a Value> {
    let spec = &object["spec"];
    let template = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => &spec["template"],
        "CronJob" => &spec["jobTemplate"]["spec"]["template"],
        _ => return None,
    };
    template.is_object().then_some(template)
}

/// The labels of the pods a workload (as JSON) runs; `None` for a kind that runs none.
pub(crate) fn pod_labels(kind: &str, object: &Value) -> Option<BTreeMap<String, String>> {
    pod_template(kind, object).map(|t| string_map(t["metadata"].get("labels")))
}

/// The kind a Role's `resources` entry names, for the kinds an operator creates as children.
fn kind_of_plural(plural: &str) -> Option<&'static str> {
    Some(match plural {
        "configmaps" => "ConfigMap",
        "secrets" => "Secret",
        "services" => "Service",
        "serviceaccounts" => "ServiceAccount",
        "persistentvolumeclaims" => "PersistentVolumeClaim",
        "deployments" => "Deployment",
        "jobs" => "Job",
        "cronjobs" => "CronJob",
        "horizontalpodautoscalers" => "HorizontalPodAutoscaler",
        _ => return None,
    })
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refused(kind: &str, name: &str) -> RefusedSibling {
        RefusedSibling {
            kind: kind.into(),
            name: name.into(),
            pod_labels: None,
            labels: BTreeMap::new(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_autoscaler_uses_the_deployment_it_resizes() {
        let hpa = json!({"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x-deployment"}}});
        let uses = Uses::of("HorizontalPodAutoscaler", &hpa);
        assert!(
            uses.refused(&[refused("Deployment", "x-deployment")])
                .is_some()
        );
        assert!(uses.refused(&[refused("Deployment", "other")]).is_none());
        assert!(
            uses.refused(&[refused("Service", "x-deployment")])
                .is_none()
        );
    }

    #[test]
    fn a_workload_uses_what_its_pods_mount_and_read() {
        let deployment = json!({"spec": {"template": {"spec": {
            "serviceAccountName": "sa",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "configMap": {"name": "cm"}},
                {"name": "b", "secret": {"secretName": "tls"}},
                {"name": "c", "projected": {"sources": [{"configMap": {"name": "projected-cm"}}, {"secret": {"name": "projected-secret"}}]}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "claim"}}
            ],
            "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "init-env"}}]}],
            "containers": [{"name": "c", "env": [
                {"name": "E", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}},
                {"name": "F", "valueFrom": {"configMapKeyRef": {"name": "keyed", "key": "k"}}}
            ], "envFrom": [{"secretRef": {"name": "env-secret"}}]}]
        }}}});
        let uses = Uses::of("Deployment", &deployment);
        for (kind, name) in [
            ("ServiceAccount", "sa"),
            ("Secret", "pull"),
            ("ConfigMap", "cm"),
            ("Secret", "tls"),
            ("ConfigMap", "projected-cm"),
            ("Secret", "projected-secret"),
            ("PersistentVolumeClaim", "claim"),
            ("ConfigMap", "init-env"),
            ("Secret", "creds"),
            ("ConfigMap", "keyed"),
            ("Secret", "env-secret"),
        ] {
            assert!(
                uses.refused(&[refused(kind, name)]).is_some(),
                "{kind}/{name}"
            );
        }
        assert!(uses.refused(&[refused("ConfigMap", "unrelated")]).is_none());
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"volumes": [{"name": "a", "configMap": {"name": "cm"}}]}}}}}});
        assert!(
            Uses::of("CronJob", &cron)
                .refused(&[refused("ConfigMap", "cm")])
                .is_some()
        );
    }

    #[test]
    fn selectors_use_the_workloads_whose_pods_they_select() {
        let mut deployment = refused("Deployment", "x");
        deployment.pod_labels = Some(labels(&[("app", "x"), ("version", "1")]));
        let service = json!({"spec": {"selector": {"app": "x"}}});
        assert!(
            Uses::of("Service", &service)
                .refused(std::slice::from_ref(&deployment))
                .is_some()
        );
        let other = json!({"spec": {"selector": {"app": "y"}}});
        assert!(
            Uses::of("Service", &other)
                .refused(std::slice::from_ref(&deployment))
                .is_none()
        );
        let pdb = json!({"spec": {"selector": {"matchLabels": {"app": "x"}}}});
        assert!(
            Uses::of("PodDisruptionBudget", &pdb)
                .refused(std::slice::from_ref(&deployment))
                .is_some()
        );
        let policy =
            json!({"spec": {"podSelector": {"matchLabels": {"app": "x", "version": "1"}}}});
        assert!(
            Uses::of("NetworkPolicy", &policy)
                .refused(std::slice::from_ref(&deployment))
                .is_some()
        );
        let expression = json!({"spec": {"podSelector": {"matchLabels": {"app": "z"}, "matchExpressions": [{"key": "a", "operator": "Exists"}]}}});
        assert!(
            Uses::of("NetworkPolicy", &expression)
                .refused(std::slice::from_ref(&deployment))
                .is_some(),
            "an expression is not evaluated: it is taken to select"
        );
        // A refused ConfigMap runs no pods: a Service does not use it.
        assert!(
            Uses::of("Service", &service)
                .refused(&[refused("ConfigMap", "x")])
                .is_none()
        );
    }

    #[test]
    fn a_monitor_uses_the_services_it_selects() {
        let mut service = refused("Service", "x");
        service.labels = labels(&[("app.kubernetes.io/instance", "x")]);
        let monitor =
            json!({"spec": {"selector": {"matchLabels": {"app.kubernetes.io/instance": "x"}}}});
        assert!(
            Uses::of("ServiceMonitor", &monitor)
                .refused(std::slice::from_ref(&service))
                .is_some()
        );
    }

    #[test]
    fn rbac_uses_the_role_the_account_and_the_named_objects_it_grants() {
        let binding = json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}]
        });
        let uses = Uses::of("RoleBinding", &binding);
        assert!(uses.refused(&[refused("Role", "r")]).is_some());
        assert!(uses.refused(&[refused("ServiceAccount", "sa")]).is_some());
        let role = json!({"rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["x-inflight"], "verbs": ["patch"]}]});
        assert!(
            Uses::of("Role", &role)
                .refused(&[refused("ConfigMap", "x-inflight")])
                .is_some()
        );
        assert!(
            Uses::of("Role", &role)
                .refused(&[refused("Secret", "x-inflight")])
                .is_none()
        );
    }

    #[test]
    fn pod_labels_come_from_the_template() {
        let deployment =
            json!({"spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {}}}});
        assert_eq!(
            pod_labels("Deployment", &deployment),
            Some(labels(&[("app", "x")]))
        );
        assert_eq!(pod_labels("ConfigMap", &json!({"data": {}})), None);
    }
}
