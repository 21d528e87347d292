//! `backup` and `restore`: what it takes to bring the payments engine back on a cluster, as
//! plain manifests in a directory.
//!
//! A backup holds, each in its own file and in the order a restore applies them:
//! 1. `1-crds.yaml`: the five CRDs;
//! 2. `2-namespaces.yaml`: the namespaces the resources and the operators live in;
//! 3. `3-operators.yaml`: each operator's ServiceAccount, config and RBAC, found by the names
//!    the install gives them (`<binary>`, `<binary>-config`, `<binary>-children`,
//!    `<binary>-leader-election`, `<binary>-manager`, `<binary>-manager-binding`);
//! 4. `4-resources.yaml`: every custom resource of the five kinds.
//!
//! and `manifest.json`: when, what scope, each file's objects, and the Secrets the resources
//! reference. Secrets are never exported: a restore checks that they exist and says which do
//! not. Server-set fields (uid, resourceVersion, managed fields, status, finalizers) are left
//! out, so a restore recreates the objects as their owners wrote them, and the operators
//! rebuild every child and every status.

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::CliError;
use crate::kinds::{self, OPERATORS};
use operator_core::manifests::{as_written, to_documents};

/// The files of a backup, in the order a restore applies them.
pub const FILES: [&str; 4] = [
    "1-crds.yaml",
    "2-namespaces.yaml",
    "3-operators.yaml",
    "4-resources.yaml",
];

/// What `manifest.json` says of a backup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub created_at: String,
    /// The namespace backed up, or `None` for all.
    pub namespace: Option<String>,
    /// Objects per file, in [`FILES`] order.
    pub objects: Vec<(String, usize)>,
    /// `namespace/name` of each Secret a resource names, never its content.
    pub secrets_referenced: Vec<String>,
}

/// The kinds besides the five that a backup holds, with their API groups.
const PLAIN_KINDS: [(&str, &str, &str); 8] = [
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
    ("", "v1", "Namespace"),
    ("", "v1", "ServiceAccount"),
    ("", "v1", "ConfigMap"),
    ("rbac.authorization.k8s.io", "v1", "Role"),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
];

/// How the API server serves `kind` of `api_version` (every kind a backup holds is plural
/// by an `s`).
pub fn resource_of(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    ApiResource::from_gvk_with_plural(&gvk, &format!("{}s", kind.to_ascii_lowercase()))
}

fn plain(kind: &str) -> ApiResource {
    let (group, version, kind) = PLAIN_KINDS
        .iter()
        .find(|(_, _, k)| *k == kind)
        .copied()
        .unwrap_or(("", "v1", kind));
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    resource_of(&api_version, kind)
}

/// The Secrets a resource's spec names: a `secretName` or `…SecretName` string, a
/// `secretRef` or `…SecretRef` object's `name`.
pub fn secrets_named(spec: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    collect_secrets(spec, &mut names);
    names
}

fn collect_secrets(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let by_name = key == "secretName" || key.ends_with("SecretName");
                let by_ref = key == "secretRef" || key.ends_with("SecretRef");
                if let (true, Some(name)) = (by_name, child.as_str()) {
                    names.insert(name.to_string());
                } else if let (true, Some(name)) = (by_ref, child["name"].as_str()) {
                    names.insert(name.to_string());
                }
                collect_secrets(child, names);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_secrets(i, names)),
        _ => {}
    }
}

async fn list(
    client: &Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<Vec<Value>, CliError> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let list = api.list(params).await?;
    list.items
        .into_iter()
        .map(|mut o| {
            // Listed items carry no type; a manifest needs it.
            o.types = Some(kube::core::TypeMeta {
                api_version: resource.api_version.clone(),
                kind: resource.kind.clone(),
            });
            serde_json::to_value(o).map_err(|e| CliError::Print(e.to_string()))
        })
        .collect()
}

async fn named(
    client: &Client,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Vec<Value>, CliError> {
    let params = ListParams::default().fields(&format!("metadata.name={name}"));
    list(client, &plain(kind), namespace, &params).await
}

/// Backs up the five kinds' resources in `namespace` (all namespaces with `None`), with what
/// they need, into the directory `to` (created; files in it are replaced).
pub async fn backup(
    client: &Client,
    namespace: Option<&str>,
    to: &Path,
) -> Result<Manifest, CliError> {
    let mut crds = Vec::new();
    let mut resources = Vec::new();
    for kind in kinds::all() {
        let crd = format!("{}.{}", kind.resource.plural, kind.resource.group);
        crds.extend(named(client, "CustomResourceDefinition", None, &crd).await?);
        match list(client, &kind.resource, namespace, &ListParams::default()).await {
            Ok(items) => resources.extend(items),
            Err(CliError::Api(kube::Error::Api(s))) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let mut operators = Vec::new();
    for descriptor in OPERATORS {
        let binary = descriptor.binary_name();
        for account in named(client, "ServiceAccount", None, binary).await? {
            let home = account["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default();
            operators
                .extend(named(client, "ConfigMap", Some(home), &format!("{binary}-config")).await?);
            operators.push(account.clone());
        }
        for (kind, suffix) in [
            ("Role", "children"),
            ("RoleBinding", "children"),
            ("Role", "leader-election"),
            ("RoleBinding", "leader-election"),
            ("ClusterRole", "manager"),
            ("ClusterRoleBinding", "manager-binding"),
        ] {
            operators.extend(named(client, kind, None, &format!("{binary}-{suffix}")).await?);
        }
    }
    let mut in_use: BTreeSet<String> = resources
        .iter()
        .chain(&operators)
        .filter_map(|o| o["metadata"]["namespace"].as_str().map(String::from))
        .collect();
    if let Some(ns) = namespace {
        in_use.insert(ns.to_string());
    }
    let mut namespaces = Vec::new();
    for ns in &in_use {
        namespaces.extend(named(client, "Namespace", None, ns).await?);
    }
    let secrets_referenced = resources
        .iter()
        .flat_map(|r| {
            let ns = r["metadata"]["namespace"].as_str().unwrap_or_default();
            secrets_named(&r["spec"])
                .into_iter()
                .map(move |s| format!("{ns}/{s}"))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    std::fs::create_dir_all(to).map_err(|e| io(to, e))?;
    let mut objects = Vec::new();
    for (file, items) in FILES.iter().zip([crds, namespaces, operators, resources]) {
        let path = to.join(file);
        std::fs::write(
            &path,
            to_documents(&items.iter().cloned().map(as_written).collect::<Vec<_>>())
                .map_err(|e| CliError::Print(e.to_string()))?,
        )
        .map_err(|e| io(&path, e))?;
        objects.push((file.to_string(), items.len()));
    }
    let manifest = Manifest {
        created_at: Timestamp::now().to_string(),
        namespace: namespace.map(String::from),
        objects,
        secrets_referenced,
    };
    let path = to.join("manifest.json");
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| CliError::Print(e.to_string()))?;
    std::fs::write(&path, text + "\n").map_err(|e| io(&path, e))?;
    Ok(manifest)
}

pub(crate) fn io(path: &Path, error: std::io::Error) -> CliError {
    CliError::Print(format!("{}: {error}", path.display()))
}

/// An object's identity, for messages: `Kind namespace/name` (or `Kind name`).
pub fn describe(object: &Value) -> String {
    let meta = &object["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    match meta["namespace"].as_str() {
        Some(ns) => format!(
            "{} {ns}/{name}",
            object["kind"].as_str().unwrap_or_default()
        ),
        None => format!("{} {name}", object["kind"].as_str().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_backed_up_object_keeps_what_its_owner_wrote_and_nothing_the_server_set() {
        let object = json!({
            "apiVersion": "payments.io/v1", "kind": "BatchProcessor",
            "metadata": {"name": "b", "namespace": "payments", "uid": "1", "resourceVersion": "7",
                "generation": 2, "creationTimestamp": "t", "managedFields": [{}],
                "finalizers": ["payments.io/x"], "labels": {"team": "a"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"schedule": "0 2 * * *"},
            "status": {"phase": "Scheduled"},
        });
        assert_eq!(
            as_written(object),
            json!({
                "apiVersion": "payments.io/v1", "kind": "BatchProcessor",
                "metadata": {"name": "b", "namespace": "payments", "labels": {"team": "a"}},
                "spec": {"schedule": "0 2 * * *"},
            })
        );
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "payments"}, "spec": {"finalizers": ["kubernetes"]}});
        assert_eq!(
            as_written(namespace),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments"}})
        );
    }

    #[test]
    fn the_secrets_a_spec_names_are_found_wherever_it_names_them() {
        let spec = json!({
            "security": {"tls": {"secretName": "gateway-tls"}},
            "config": {"bankingPartners": [
                {"tls": {"caSecretRef": {"name": "acme-ca", "key": "ca.crt"},
                         "clientCertificateSecretName": "acme-client"},
                 "auth": {"secretRef": {"name": "acme-token", "key": "token"}}}]},
            "other": {"name": "not-a-secret"},
        });
        let names: Vec<String> = secrets_named(&spec).into_iter().collect();
        assert_eq!(
            names,
            ["acme-ca", "acme-client", "acme-token", "gateway-tls"]
        );
    }

    #[test]
    fn every_kind_of_a_backup_is_served_where_the_api_server_serves_it() {
        let crd = plain("CustomResourceDefinition");
        assert_eq!(
            (crd.api_version.as_str(), crd.plural.as_str()),
            ("apiextensions.k8s.io/v1", "customresourcedefinitions")
        );
        assert_eq!(plain("Namespace").api_version, "v1");
        assert_eq!(plain("ClusterRoleBinding").plural, "clusterrolebindings");
        let ps = resource_of("payments.io/v2", "PaymentService");
        assert_eq!(
            (ps.group.as_str(), ps.plural.as_str()),
            ("payments.io", "paymentservices")
        );
    }
}
