//! `restore`: a backup ([`crate::backup`]) applied again, file by file in its order: the
//! CRDs (then waiting until the API server serves them), the namespaces, the operators'
//! config and RBAC, the resources. Each object is applied server-side under this tool's field
//! manager, so a restore run twice changes nothing the second time; `--dry-run` has the API
//! server check every object and says what it would do. The Secrets the resources name are
//! checked, never written: the report says which are missing.

use std::path::Path;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use crate::backup::{FILES, Manifest, describe, io, resource_of};
use crate::{CliError, FIELD_MANAGER};
use operator_core::manifests::{self, documents};

/// How long a restored CRD may take to be served.
const ESTABLISHED_WITHIN: Duration = Duration::from_secs(60);

/// Applies the backup in `from`; one line per object (`create`, `update` or `unchanged`;
/// `would create`, `would update` with `dry_run`), then one per missing Secret.
pub async fn restore(client: &Client, from: &Path, dry_run: bool) -> Result<Vec<String>, CliError> {
    let path = from.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
        CliError::Print(format!("{}: not a backup's manifest: {e}", path.display()))
    })?;
    let mut report = Vec::new();
    for file in FILES {
        let path = from.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        let objects =
            documents(&text).map_err(|e| CliError::Print(format!("{}: {e}", path.display())))?;
        for object in &objects {
            report.push(apply(client, object, dry_run).await?);
        }
        if file == FILES[0] && !dry_run {
            for crd in &objects {
                established(client, crd).await?;
            }
        }
    }
    for secret in &manifest.secrets_referenced {
        let (namespace, name) = secret.split_once('/').unwrap_or(("", secret));
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(client.clone(), namespace);
        if secrets.get_metadata_opt(name).await?.is_none() {
            report.push(format!(
                "missing Secret {secret}: a restored resource names it; restore it from where your secrets are kept (the operator waits for it)"
            ));
        }
    }
    Ok(report)
}

async fn apply(client: &Client, object: &Value, dry_run: bool) -> Result<String, CliError> {
    let resource = resource_of(
        object["apiVersion"].as_str().unwrap_or_default(),
        object["kind"].as_str().unwrap_or_default(),
    );
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let before = api.get_opt(name).await?;
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    let after = api.patch(name, &params, &Patch::Apply(object)).await?;
    let as_written = |o: &DynamicObject| serde_json::to_value(o).map(manifests::as_written).ok();
    let action = match before {
        None => "create",
        Some(before) if as_written(&before) == as_written(&after) => "unchanged",
        Some(_) => "update",
    };
    let would = if dry_run && action != "unchanged" {
        "would "
    } else {
        ""
    };
    Ok(format!("{would}{action} {}", describe(object)))
}

/// Waits until the API server serves the restored CRD.
async fn established(client: &Client, crd: &Value) -> Result<(), CliError> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let started = Instant::now();
    loop {
        let served = crds
            .get_opt(name)
            .await?
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if served {
            return Ok(());
        }
        if started.elapsed() > ESTABLISHED_WITHIN {
            return Err(CliError::NoAnswer {
                what: format!(
                    "serve the restored CustomResourceDefinition {name} (the API server)"
                ),
                waited: ESTABLISHED_WITHIN,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
