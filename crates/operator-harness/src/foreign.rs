//! The conformance check for objects that are not the operator's: another team's object
//! that already has a child's name is never changed, adopted, scaled, mounted, selected or
//! deleted — on create, update and delete of the resource — and the resource's status names
//! the conflict.
//!
//! The child names come from the operator itself: one resource converges first, and every
//! object it then controls (of the kinds in [`KINDS`]) is a child name to take.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::conformance::Subject;
use crate::{Harness, until};

/// How long each stage may take.
const STAGE: Duration = Duration::from_secs(60);

/// The kinds an operator's children are of: `(apiVersion, plural, Kind)`.
const KINDS: &[(&str, &str, &str)] = &[
    ("apps/v1", "deployments", "Deployment"),
    ("v1", "services", "Service"),
    ("v1", "configmaps", "ConfigMap"),
    ("v1", "secrets", "Secret"),
    ("v1", "serviceaccounts", "ServiceAccount"),
    ("v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    (
        "autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
    ),
    ("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "roles", "Role"),
    (
        "rbac.authorization.k8s.io/v1",
        "rolebindings",
        "RoleBinding",
    ),
    ("batch/v1", "cronjobs", "CronJob"),
    ("batch/v1", "jobs", "Job"),
    (
        "monitoring.coreos.com/v1",
        "servicemonitors",
        "ServiceMonitor",
    ),
    (
        "monitoring.coreos.com/v1",
        "prometheusrules",
        "PrometheusRule",
    ),
];

/// A child of kind `KINDS[kind]` named `name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Taken {
    kind: usize,
    name: String,
}

impl Taken {
    fn api_version(&self) -> &'static str {
        KINDS[self.kind].0
    }
    fn plural(&self) -> &'static str {
        KINDS[self.kind].1
    }
    fn kind(&self) -> &'static str {
        KINDS[self.kind].2
    }
}

/// Another team's object of `taken`'s kind and name: labelled as theirs, with content the
/// operator would change if it wrote to it (seven replicas, data, a selector of theirs).
fn foreign_object(taken: &Taken, namespace: &str) -> Value {
    let metadata = json!({"name": taken.name, "namespace": namespace, "labels": {"team": "other"}});
    let pod = json!({
        "metadata": {"labels": {"team": "other"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "registry.example/other:1"}]}
    });
    let mut object = match taken.kind() {
        "Deployment" => json!({"spec": {
            "replicas": 7,
            "selector": {"matchLabels": {"team": "other"}},
            "template": {"metadata": pod["metadata"], "spec": {"containers": pod["spec"]["containers"]}}
        }}),
        "Service" => json!({"spec": {"selector": {"team": "other"}, "ports": [{"port": 8080}]}}),
        "ConfigMap" => {
            json!({"data": {"owner": "other team", "config.json": "{\"theirs\": true}"}})
        }
        "Secret" => json!({"data": {"owner": "b3RoZXI="}}),
        "ServiceAccount" => json!({}),
        "PersistentVolumeClaim" => json!({"spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}
        }}),
        "HorizontalPodAutoscaler" => json!({"spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "other-team-app"},
            "minReplicas": 2, "maxReplicas": 9
        }}),
        "PodDisruptionBudget" => {
            json!({"spec": {"minAvailable": 1, "selector": {"matchLabels": {"team": "other"}}}})
        }
        "NetworkPolicy" => json!({"spec": {"podSelector": {"matchLabels": {"team": "other"}}}}),
        "Role" => {
            json!({"rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]})
        }
        "RoleBinding" => json!({
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "other-team-role"},
            "subjects": [{"kind": "ServiceAccount", "name": "other-team"}]
        }),
        "CronJob" => json!({"spec": {
            "schedule": "0 0 1 1 *", "suspend": true,
            "jobTemplate": {"spec": {"template": pod}}
        }}),
        "Job" => json!({"spec": {"suspend": true, "template": pod}}),
        "ServiceMonitor" => json!({"spec": {
            "selector": {"matchLabels": {"team": "other"}}, "endpoints": [{"port": "metrics"}]
        }}),
        _ => {
            json!({"spec": {"groups": [{"name": "other", "rules": [{"alert": "Theirs", "expr": "vector(0)"}]}]}})
        }
    };
    object["apiVersion"] = json!(taken.api_version());
    object["kind"] = json!(taken.kind());
    object["metadata"] = metadata;
    object
}

fn api(harness: &Harness, taken: &Taken, namespace: &str) -> Api<DynamicObject> {
    let (group, version) = taken
        .api_version()
        .rsplit_once('/')
        .unwrap_or(("", taken.api_version()));
    let gvk = GroupVersionKind::gvk(group, version, taken.kind());
    Api::namespaced_with(
        harness.client(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, taken.plural()),
    )
}

/// An object as its owner wrote it: without what the server and other controllers keep
/// moving (status, resourceVersion, managed fields).
fn as_written(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(o) = object.as_object_mut() {
        o.remove("status");
    }
    if let Some(m) = object["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    object
}

fn name_of(resource: &Value) -> &str {
    resource["metadata"]["name"].as_str().unwrap_or_default()
}

fn namespace_of(resource: &Value) -> &str {
    resource["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
}

/// Every object (of [`KINDS`]) whose controller is the object with `uid`.
fn controlled_by(harness: &Harness, uid: &str) -> Vec<Taken> {
    let mut found = Vec::new();
    for (kind, (api_version, plural, _)) in KINDS.iter().enumerate() {
        for object in harness.server.objects(api_version, plural) {
            let controlled = object["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["controller"] == true && r["uid"] == uid);
            if controlled {
                found.push(Taken {
                    kind,
                    name: name_of(&object).to_string(),
                });
            }
        }
    }
    found.sort();
    found
}

/// Whether a condition of the resource is False and names `name` in its message.
fn status_names(resource: &Value, name: &str) -> bool {
    resource["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["status"] == "False" && c["message"].as_str().is_some_and(|m| m.contains(name)))
}

/// The check: see the module docs.
pub async fn foreign_objects_are_never_touched(subject: &Subject) -> Result<()> {
    let mut harness = (subject.harness)().prepare().await?;
    harness.start_operator();

    // The child names, from a resource that converges with nothing in its way.
    let probe = (subject.resource)(0);
    subject.create_one(&harness, &probe).await?;
    until("the probe converged", STAGE, || {
        subject.converged(&harness) == 1
    })
    .await?;
    let probe_uid = subject
        .resources(&harness)?
        .first()
        .and_then(|r| r["metadata"]["uid"].as_str().map(String::from))
        .context("the probe has a UID")?;
    // What the operator uses as the user gives it (an account the user names) is no child
    // name to take: using it is the point.
    let used_as_found: Vec<String> = (subject.used_as_found)(&probe)
        .into_iter()
        .map(|c| format!("{}/{}", c.plural, c.name))
        .collect();
    let children: Vec<Taken> = controlled_by(&harness, &probe_uid)
        .into_iter()
        .filter(|c| !used_as_found.contains(&format!("{}/{}", c.plural(), c.name)))
        .collect();
    ensure!(!children.is_empty(), "the probe has no children");

    // Resource i, the probe's twin, finds child i's name taken by another team.
    let mut cases: Vec<(Value, Taken, Value)> = Vec::new();
    for (i, child) in children.iter().enumerate() {
        let mut resource = probe.clone();
        resource["metadata"]["name"] = json!(format!("{}-{i}", name_of(&probe)));
        let taken = Taken {
            kind: child.kind,
            name: child.name.replace(name_of(&probe), name_of(&resource)),
        };
        let namespace = namespace_of(&resource).to_string();
        let object: DynamicObject = serde_json::from_value(foreign_object(&taken, &namespace))?;
        let created = api(&harness, &taken, &namespace)
            .create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating another team's {} {}", taken.kind(), taken.name))?;
        cases.push((resource, taken, serde_json::to_value(created)?));
    }
    for (resource, _, _) in &cases {
        subject.create_one(&harness, resource).await?;
    }

    let check_untouched = |stage: &str| -> Result<()> {
        for (resource, taken, before) in &cases {
            let namespace = namespace_of(resource);
            let now = harness
                .server
                .object(taken.api_version(), taken.plural(), namespace, &taken.name)
                .with_context(|| format!("{stage}: {} {} was deleted", taken.kind(), taken.name))?;
            ensure!(
                as_written(&now) == as_written(before),
                "{stage}: another team's {} {} was changed:\nbefore {}\nafter  {}",
                taken.kind(),
                taken.name,
                as_written(before),
                as_written(&now)
            );
            // No object the operator made uses it: no autoscaler aimed at it, no pod mounting it.
            for (api_version, plural, kind) in KINDS {
                for ours in harness.server.objects(api_version, plural) {
                    let managed = ours["metadata"]["labels"]["app.kubernetes.io/managed-by"]
                        == subject.operator.binary_name();
                    ensure!(
                        !(managed && operator_core::apply::uses(kind, &ours, taken.kind(), &now)),
                        "{stage}: the operator's {kind} {} uses another team's {} {}",
                        name_of(&ours),
                        taken.kind(),
                        taken.name
                    );
                }
            }
        }
        Ok(())
    };

    // Created: each resource says which of its children is someone else's.
    let silent = || -> Vec<String> {
        let resources: BTreeMap<String, Value> = subject
            .resources(&harness)
            .unwrap_or_default()
            .into_iter()
            .map(|r| (name_of(&r).to_string(), r))
            .collect();
        cases
            .iter()
            .filter(|(resource, taken, _)| {
                !resources
                    .get(name_of(resource))
                    .is_some_and(|r| status_names(r, &taken.name))
            })
            .map(|(resource, taken, _)| {
                format!(
                    "{} (in the way: {} {}; status {})",
                    name_of(resource),
                    taken.kind(),
                    taken.name,
                    resources
                        .get(name_of(resource))
                        .map_or(Value::Null, |r| r["status"].clone())
                )
            })
            .collect()
    };
    let named = until("each status names the object in its way", STAGE, || {
        silent().is_empty()
    })
    .await;
    named.with_context(|| format!("statuses that do not name it: {:?}", silent()))?;
    check_untouched("after create")?;

    // Updated: a spec change reconciled.
    let bench = &subject.operator.bench;
    let change = (bench.change)(bench.first_target + 1);
    for (resource, _, _) in &cases {
        subject
            .api_for(&harness, resource)?
            .patch(
                name_of(resource),
                &PatchParams::default(),
                &Patch::Merge(&change),
            )
            .await?;
    }
    until("each update reconciled", STAGE, || {
        subject
            .resources(&harness)
            .unwrap_or_default()
            .iter()
            .all(|r| {
                r["metadata"]["name"] == name_of(&probe)
                    || r["status"]["observedGeneration"] == r["metadata"]["generation"]
            })
    })
    .await?;
    // A few resyncs (300 ms each) after the update.
    tokio::time::sleep(Duration::from_secs(1)).await;
    check_untouched("after update")?;

    // Deleted: the deletion completes and leaves the other team's objects as they were.
    for (resource, _, _) in &cases {
        subject
            .api_for(&harness, resource)?
            .delete(name_of(resource), &DeleteParams::default())
            .await?;
    }
    until("every deletion completed", STAGE, || {
        subject
            .resources(&harness)
            .is_ok_and(|r| r.iter().all(|r| r["metadata"]["name"] == name_of(&probe)))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    check_untouched("after delete")?;
    harness.stop_operator().await
}
