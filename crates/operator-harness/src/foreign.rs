//! The conformance check for objects that are not the operator's: another team's object
//! that already has a child's name is never changed, adopted, scaled, mounted, selected or
//! deleted — on create, update and delete of the resource — and the resource's status names
//! the conflict.
//!
//! The child names come from the operator itself: one resource converges first, and every
//! object it then controls (of the kinds in [`KINDS`]) is a child name to take.
//!
//! It runs against any API server through a `kube::Client`: testkit in each operator's
//! conformance tests, the real control plane in the e2e suite.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use operator_core::OperatorDescriptor;
use operator_core::tooling::ChildRef;
use serde_json::{Value, json};

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
    // Restricted pods, so a namespace that enforces Pod Security admits them.
    let containers = json!([{
        "name": "main", "image": "registry.example/other:1",
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
    }]);
    let pod_spec = json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
    });
    let pod = json!({
        "metadata": {"labels": {"team": "other"}},
        "spec": {"restartPolicy": "Never", "securityContext": pod_spec["securityContext"], "containers": containers}
    });
    let mut object = match taken.kind() {
        "Deployment" => json!({"spec": {
            "replicas": 7,
            "selector": {"matchLabels": {"team": "other"}},
            "template": {"metadata": pod["metadata"], "spec": pod_spec}
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

/// The dynamic API of one kind in `namespace`.
fn api_of(
    client: &Client,
    api_version: &str,
    kind: &str,
    plural: &str,
    namespace: &str,
) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

fn taken_api(client: &Client, taken: &Taken, namespace: &str) -> Api<DynamicObject> {
    api_of(
        client,
        taken.api_version(),
        taken.kind(),
        taken.plural(),
        namespace,
    )
}

/// An object as its owner wrote it: what the operator could change, without what the server
/// and other controllers keep moving (status, resourceVersion, managed fields, the
/// Deployment controller's revision annotation).
fn as_written(object: &Value) -> Value {
    let metadata = &object["metadata"];
    let annotations: serde_json::Map<String, Value> = metadata["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !k.contains("kubernetes.io"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    json!({
        "uid": metadata["uid"],
        "labels": metadata["labels"],
        "annotations": annotations,
        "ownerReferences": metadata["ownerReferences"],
        "spec": object["spec"],
        "data": object["data"],
        "binaryData": object["binaryData"],
        "rules": object["rules"],
        "roleRef": object["roleRef"],
        "subjects": object["subjects"],
    })
}

fn name_of(resource: &Value) -> &str {
    resource["metadata"]["name"].as_str().unwrap_or_default()
}

/// Every object of one kind in `namespace`, as JSON (none where the kind is not served).
async fn list(client: &Client, kind: usize, namespace: &str) -> Result<Vec<Value>> {
    let (api_version, plural, kind) = KINDS[kind];
    match api_of(client, api_version, kind, plural, namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list
            .items
            .into_iter()
            .map(|o| Ok(serde_json::to_value(o)?))
            .collect(),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Every object (of [`KINDS`]) in `namespace` whose controller is the object with `uid`.
async fn controlled_by(client: &Client, namespace: &str, uid: &str) -> Result<Vec<Taken>> {
    let mut found = Vec::new();
    for kind in 0..KINDS.len() {
        for object in list(client, kind, namespace).await? {
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
    Ok(found)
}

/// Whether a condition of the resource is False and names `name` in its message.
fn status_names(resource: &Value, name: &str) -> bool {
    resource["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["status"] == "False" && c["message"].as_str().is_some_and(|m| m.contains(name)))
}

/// Polls `check` until it returns `Ok(None)`; on time-out, fails with the last thing it said
/// was missing.
async fn until_nothing_missing<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<String>>>,
{
    let started = std::time::Instant::now();
    loop {
        let missing = check().await?;
        match missing {
            None => return Ok(()),
            Some(missing) if started.elapsed() > limit => {
                anyhow::bail!("{what} did not happen within {limit:?}: {missing}")
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// One resource and the child name another team took before it was created.
struct Case {
    resource: Value,
    taken: Taken,
    /// The other team's object as it was created.
    created: Value,
}

// Over 120 lines on purpose: one scenario, read top-down (create, take each name, check
// every path leaves the foreign object as it was); its helpers are the functions above.
/// The check (see the module docs), with `operator` already running against `client`:
/// `probe` (a resource as JSON, namespace included) is created and converges, then one twin
/// of it per child finds that child's name taken. `used_as_found` are objects the operator
/// uses as the user gives them (an account the user names): not child names to take.
pub async fn foreign_objects_are_never_touched(
    client: &Client,
    operator: &OperatorDescriptor,
    probe: Value,
    used_as_found: &[ChildRef],
    stage: Duration,
) -> Result<()> {
    let served = operator
        .resources
        .first()
        .context("the operator serves no resource")?;
    let namespace = probe["metadata"]["namespace"]
        .as_str()
        .context("the probe names its namespace")?
        .to_string();
    let kind = served.resource.resource();
    let resources = api_of(
        client,
        probe["apiVersion"].as_str().unwrap_or(&kind.api_version),
        probe["kind"].as_str().unwrap_or_default(),
        &kind.plural,
        &namespace,
    );
    let get = |name: String| {
        let resources = resources.clone();
        async move {
            anyhow::Ok(match resources.get_opt(&name).await? {
                Some(o) => Some(serde_json::to_value(o)?),
                None => None,
            })
        }
    };

    // The child names, from a resource that converges with nothing in its way.
    let probe_name = name_of(&probe).to_string();
    resources
        .create(
            &PostParams::default(),
            &serde_json::from_value(probe.clone())?,
        )
        .await
        .context("creating the probe")?;
    until_nothing_missing("the probe converging", stage, || async {
        let now = get(probe_name.clone()).await?;
        Ok(
            (!now.as_ref().is_some_and(|p| served.converged.check(p))).then(|| {
                format!(
                    "status {}",
                    now.map_or(Value::Null, |p| p["status"].clone())
                )
            }),
        )
    })
    .await?;
    let probe_uid = get(probe_name.clone())
        .await?
        .and_then(|p| p["metadata"]["uid"].as_str().map(String::from))
        .context("the probe has a UID")?;
    let used: Vec<String> = used_as_found
        .iter()
        .map(|c| format!("{}/{}", c.plural, c.name))
        .collect();
    let children: Vec<Taken> = controlled_by(client, &namespace, &probe_uid)
        .await?
        .into_iter()
        .filter(|c| !used.contains(&format!("{}/{}", c.plural(), c.name)))
        .collect();
    ensure!(!children.is_empty(), "the probe has no children");
    println!(
        "{}: another team takes each of {} child names: {}",
        operator.package(),
        children.len(),
        children
            .iter()
            .map(|c| format!("{} {}", c.kind(), c.name))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // Twin i of the probe finds child i's name taken by another team.
    let mut cases = Vec::new();
    for (i, child) in children.iter().enumerate() {
        let mut resource = probe.clone();
        let name = format!("{probe_name}-{i}");
        resource["metadata"]["name"] = json!(name);
        let taken = Taken {
            kind: child.kind,
            name: child.name.replace(&probe_name, &name),
        };
        let object: DynamicObject = serde_json::from_value(foreign_object(&taken, &namespace))?;
        let created = taken_api(client, &taken, &namespace)
            .create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating another team's {} {}", taken.kind(), taken.name))?;
        cases.push(Case {
            resource,
            taken,
            created: serde_json::to_value(created)?,
        });
    }
    for case in &cases {
        resources
            .create(
                &PostParams::default(),
                &serde_json::from_value(case.resource.clone())?,
            )
            .await?;
    }

    let untouched = |stage: &'static str| {
        let cases = &cases;
        let namespace = namespace.clone();
        async move {
            let mut ours = Vec::new();
            for (kind, (_, _, kind_name)) in KINDS.iter().enumerate() {
                for object in list(client, kind, &namespace).await? {
                    if object["metadata"]["labels"]["app.kubernetes.io/managed-by"]
                        == operator.binary_name()
                    {
                        ours.push((*kind_name, object));
                    }
                }
            }
            for case in cases {
                let taken = &case.taken;
                let now = taken_api(client, taken, &namespace)
                    .get_opt(&taken.name)
                    .await?
                    .with_context(|| {
                        format!("{stage}: {} {} was deleted", taken.kind(), taken.name)
                    })?;
                let now = serde_json::to_value(now)?;
                ensure!(
                    as_written(&now) == as_written(&case.created),
                    "{stage}: another team's {} {} was changed:\nbefore {}\nafter  {}",
                    taken.kind(),
                    taken.name,
                    as_written(&case.created),
                    as_written(&now)
                );
                // Nothing the operator made uses it: no autoscaler aimed at it, no pod
                // mounting it, no binding granting it.
                for (kind, object) in &ours {
                    ensure!(
                        !operator_core::apply::uses(kind, object, taken.kind(), &now),
                        "{stage}: the operator's {kind} {} uses another team's {} {}",
                        name_of(object),
                        taken.kind(),
                        taken.name
                    );
                }
            }
            anyhow::Ok(())
        }
    };

    // Created: each resource's status names the object in its way.
    until_nothing_missing(
        "each status naming the object in its way",
        stage,
        || async {
            let mut silent = Vec::new();
            for case in &cases {
                let now = get(name_of(&case.resource).to_string()).await?;
                if !now
                    .as_ref()
                    .is_some_and(|r| status_names(r, &case.taken.name))
                {
                    silent.push(format!(
                        "{} (in the way: {} {}; status {})",
                        name_of(&case.resource),
                        case.taken.kind(),
                        case.taken.name,
                        now.map_or(Value::Null, |r| r["status"].clone())
                    ));
                }
            }
            Ok((!silent.is_empty()).then(|| silent.join("; ")))
        },
    )
    .await?;
    untouched("after create").await?;

    // Updated: a spec change, reconciled.
    let bench = &operator.bench;
    let change = (bench.change.patch)(bench.change.first_target + 1);
    for case in &cases {
        resources
            .patch(
                name_of(&case.resource),
                &PatchParams::default(),
                &Patch::Merge(&change),
            )
            .await?;
    }
    until_nothing_missing("each update reconciled", stage, || async {
        let mut behind = Vec::new();
        for case in &cases {
            let now = get(name_of(&case.resource).to_string())
                .await?
                .unwrap_or_default();
            if now["status"]["observedGeneration"] != now["metadata"]["generation"] {
                behind.push(name_of(&case.resource).to_string());
            }
        }
        Ok((!behind.is_empty()).then(|| behind.join(", ")))
    })
    .await?;
    // A few resyncs after the update.
    tokio::time::sleep(Duration::from_secs(2)).await;
    untouched("after update").await?;

    // Deleted: each deletion completes and leaves the other team's objects as they were.
    for case in &cases {
        resources
            .delete(name_of(&case.resource), &DeleteParams::default())
            .await?;
    }
    until_nothing_missing("every deletion completing", stage, || async {
        let mut left = Vec::new();
        for case in &cases {
            if get(name_of(&case.resource).to_string()).await?.is_some() {
                left.push(name_of(&case.resource).to_string());
            }
        }
        Ok((!left.is_empty()).then(|| left.join(", ")))
    })
    .await?;
    // Garbage collection of the twins' own children runs meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    untouched("after delete").await?;
    resources
        .delete(&probe_name, &DeleteParams::default())
        .await?;
    Ok(())
}
