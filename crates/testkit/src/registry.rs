//! The kinds the server knows: built-in kinds the operators touch, plus any kind a
//! `CustomResourceDefinition` installs at run time.

use serde_json::Value;

/// How lists inside a kind merge under server-side apply; see [`crate::fieldpath`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListSemantics {
    /// `(path suffix, merge keys)`: a list whose field path ends with the suffix is a map
    /// keyed by those fields. Paths are dotted field names with `[]` for "any item".
    pub map_lists: Vec<(String, Vec<String>)>,
    /// Path suffixes of lists that are sets of scalars.
    pub set_lists: Vec<String>,
}

/// One servable kind.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    /// Whether `status` is a subresource (writes to the main resource ignore it).
    pub status_subresource: bool,
    /// The `scale` subresource's paths, when the CRD declares one.
    pub scale: Option<ScalePaths>,
    /// Whether objects keep a `metadata.generation`. A real server keeps one only for the
    /// kinds whose strategy sets it (workloads, PDBs, NetworkPolicies, CRDs and every custom
    /// resource); Services, ConfigMaps, ServiceAccounts, HPAs and most others have none.
    pub generation: bool,
    /// The CRD's `openAPIV3Schema`, when the kind came from a CRD.
    pub schema: Option<Value>,
    pub lists: ListSemantics,
    /// What `kubectl get` accepts besides the plural (`ta`, `deploy`).
    pub short_names: Vec<String>,
    /// `(name, type, jsonPath)` of the columns `kubectl get` shows after NAME.
    pub printer_columns: Vec<(String, String, String)>,
    /// A deprecated CRD version: the warning every request to it gets.
    pub deprecation_warning: Option<String>,
}

/// Where a CRD's `scale` subresource reads and writes (`.spec.replicas`, `.status.replicas`,
/// `.status.selector`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

impl ScalePaths {
    fn of(scale: &Value) -> Option<Self> {
        let path = |k: &str| scale[k].as_str().map(String::from);
        Some(Self {
            spec_replicas: path("specReplicasPath")?,
            status_replicas: path("statusReplicasPath")?,
            label_selector: path("labelSelectorPath"),
        })
    }
}

impl ResourceType {
    /// The fields besides `metadata.name`/`metadata.namespace` a field selector may name.
    pub fn selectable_fields(&self) -> &'static [&'static str] {
        if self.group.is_empty() && self.plural == "events" {
            &crate::events::SELECTABLE
        } else {
            &[]
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    status_subresource: bool,
) -> ResourceType {
    let short = |names: &[&str]| names.iter().map(|n| (*n).to_string()).collect();
    let short_names = match plural {
        "namespaces" => short(&["ns"]),
        "configmaps" => short(&["cm"]),
        "services" => short(&["svc"]),
        "serviceaccounts" => short(&["sa"]),
        "pods" => short(&["po"]),
        "events" => short(&["ev"]),
        "persistentvolumeclaims" => short(&["pvc"]),
        "deployments" => short(&["deploy"]),
        "statefulsets" => short(&["sts"]),
        "replicasets" => short(&["rs"]),
        "cronjobs" => short(&["cj"]),
        "horizontalpodautoscalers" => short(&["hpa"]),
        "poddisruptionbudgets" => short(&["pdb"]),
        "networkpolicies" => short(&["netpol"]),
        "priorityclasses" => short(&["pc"]),
        "customresourcedefinitions" => short(&["crd", "crds"]),
        _ => Vec::new(),
    };
    // As a 1.24 server and later keep it (checked against kube-apiserver).
    let generation = matches!(
        plural,
        "deployments"
            | "statefulsets"
            | "replicasets"
            | "jobs"
            | "cronjobs"
            | "poddisruptionbudgets"
            | "networkpolicies"
            | "priorityclasses"
            | "customresourcedefinitions"
            | "validatingwebhookconfigurations"
            | "mutatingwebhookconfigurations"
    );
    ResourceType {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
        status_subresource,
        scale: None,
        generation,
        schema: None,
        lists: builtin_lists(),
        short_names,
        printer_columns: Vec::new(),
        deprecation_warning: None,
    }
}

/// The merge keys Kubernetes declares (`x-kubernetes-patch-merge-key`) on the built-in kinds
/// the operators write. Anything not named here is an atomic list, as in the real schema.
fn builtin_lists() -> ListSemantics {
    let map = |suffix: &str, keys: &[&str]| {
        (
            suffix.to_string(),
            keys.iter()
                .map(|k| (*k).to_string())
                .collect::<Vec<String>>(),
        )
    };
    ListSemantics {
        map_lists: vec![
            map("metadata.ownerReferences", &["uid"]),
            map("containers", &["name"]),
            map("initContainers", &["name"]),
            map("ephemeralContainers", &["name"]),
            map("containers.[].ports", &["containerPort", "protocol"]),
            map("initContainers.[].ports", &["containerPort", "protocol"]),
            map("env", &["name"]),
            map("volumeMounts", &["mountPath"]),
            map("volumeDevices", &["devicePath"]),
            map("volumes", &["name"]),
            map("imagePullSecrets", &["name"]),
            map("hostAliases", &["ip"]),
            map(
                "topologySpreadConstraints",
                &["topologyKey", "whenUnsatisfiable"],
            ),
            map("spec.ports", &["port", "protocol"]),
            map("conditions", &["type"]),
        ],
        set_lists: vec!["metadata.finalizers".into()],
    }
}

/// The built-in kinds served from the start.
pub fn builtins() -> Vec<ResourceType> {
    vec![
        builtin("", "v1", "Namespace", "namespaces", false, true),
        builtin("", "v1", "ConfigMap", "configmaps", true, false),
        builtin("", "v1", "Secret", "secrets", true, false),
        builtin("", "v1", "Service", "services", true, true),
        builtin("", "v1", "ServiceAccount", "serviceaccounts", true, false),
        builtin("", "v1", "Pod", "pods", true, true),
        builtin("", "v1", "Event", "events", true, false),
        builtin(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            true,
        ),
        builtin("apps", "v1", "Deployment", "deployments", true, true),
        builtin("apps", "v1", "StatefulSet", "statefulsets", true, true),
        builtin("apps", "v1", "ReplicaSet", "replicasets", true, true),
        builtin("batch", "v1", "Job", "jobs", true, true),
        builtin("batch", "v1", "CronJob", "cronjobs", true, true),
        builtin(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            true,
        ),
        builtin(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            true,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
            false,
        ),
        builtin("coordination.k8s.io", "v1", "Lease", "leases", true, false),
        builtin("events.k8s.io", "v1", "Event", "events", true, false),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            false,
        ),
        builtin(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            false,
            false,
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            false,
            false,
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            false,
            false,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            true,
        ),
    ]
}

/// The kinds a CRD object makes servable: one per served version.
pub fn from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let kind = spec["names"]["kind"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let short_names: Vec<String> = spec["names"]["shortNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(String::from))
        .collect();
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool().unwrap_or(false))
        .map(|v| {
            let schema = v["schema"]["openAPIV3Schema"].clone();
            ResourceType {
                group: group.into(),
                version: v["name"].as_str().unwrap_or_default().into(),
                kind: kind.into(),
                plural: plural.into(),
                namespaced,
                status_subresource: v["subresources"]["status"].is_object(),
                scale: ScalePaths::of(&v["subresources"]["scale"]),
                generation: true,
                lists: crd_lists(&schema),
                schema: (!schema.is_null()).then_some(schema),
                short_names: short_names.clone(),
                printer_columns: v["additionalPrinterColumns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        let field = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                        (field("name"), field("type"), field("jsonPath"))
                    })
                    .collect(),
                deprecation_warning: (v["deprecated"] == true).then(|| {
                    v["deprecationWarning"].as_str().map_or_else(
                        || {
                            format!(
                                "{group}/{} {kind} is deprecated",
                                v["name"].as_str().unwrap_or_default()
                            )
                        },
                        String::from,
                    )
                }),
            }
        })
        .collect()
}

/// Reads `x-kubernetes-list-type` from a CRD schema; CRD lists are atomic unless they say.
fn crd_lists(schema: &Value) -> ListSemantics {
    let mut lists = builtin_lists();
    lists.map_lists.retain(|(s, _)| s.starts_with("metadata."));
    walk_lists(schema, "", &mut lists);
    lists
}

fn walk_lists(schema: &Value, path: &str, out: &mut ListSemantics) {
    if let Some(props) = schema["properties"].as_object() {
        for (name, sub) in props {
            let p = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            walk_lists(sub, &p, out);
        }
    }
    if schema["type"] == "array" {
        match schema["x-kubernetes-list-type"].as_str() {
            Some("map") => {
                let keys = schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect();
                out.map_lists.push((path.to_string(), keys));
            }
            Some("set") => out.set_lists.push(path.to_string()),
            _ => {}
        }
        walk_lists(&schema["items"], &format!("{path}.[]"), out);
    }
}
