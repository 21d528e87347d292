//! Admission webhooks as the real API server calls them: an operator process serves its
//! webhooks on 127.0.0.1 with a certificate generated for the test, and the Validating and
//! Mutating WebhookConfigurations of deploy/<operator> are installed pointing at it.
//!
//! What changes from the shipped configurations, and why: `clientConfig` is a URL on
//! 127.0.0.1 with the test's CA bundle instead of the Service cert-manager fills in (the
//! process runs outside the cluster); the namespace selector names the test's namespace; the
//! names get the namespace as a suffix (configurations are cluster-wide and tests run side by
//! side). Everything else, `matchConditions` included, is installed as shipped.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use testkit::tls::LocalCa;

use crate::manifests::render;
use crate::operator::work_dir;

/// A CA, and the serving certificate it signed in a directory an operator reads.
#[derive(Debug)]
pub struct WebhookCertificate {
    pub ca: LocalCa,
    pub dir: PathBuf,
}

impl WebhookCertificate {
    pub fn new(name: &str) -> Result<Self> {
        let ca = LocalCa::new(&format!("e2e webhook CA {name}"))?;
        let issued = ca.server_certificate(&[])?;
        let dir = work_dir().join(name).join("webhook-certs");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("tls.crt"), issued.cert_pem)?;
        std::fs::write(dir.join("tls.key"), issued.key_pem)?;
        Ok(Self { ca, dir })
    }
}

/// A free port on 127.0.0.1 for a webhook server.
pub fn free_address() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// The webhook configurations installed for one test; [`Self::remove`] deletes them.
pub struct InstalledWebhooks {
    client: kube::Client,
    installed: Vec<(ApiResource, String)>,
}

fn resource(kind: &str) -> ApiResource {
    let plural = format!("{}s", kind.to_lowercase());
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind),
        &plural,
    )
}

/// Installs deploy/<package>'s webhook configurations for namespace `namespace`,
/// calling the server at `address` that presents a certificate `certificate` signed.
pub async fn install(
    client: &kube::Client,
    package: &str,
    namespace: &str,
    address: SocketAddr,
    certificate: &WebhookCertificate,
) -> Result<InstalledWebhooks> {
    let ca_bundle = serde_json::to_value(ByteString(certificate.ca.pem().as_bytes().to_vec()))?;
    let mut installed = InstalledWebhooks {
        client: client.clone(),
        installed: Vec::new(),
    };
    for mut config in render(package)?.into_iter().filter(|o| {
        matches!(
            o["kind"].as_str(),
            Some("ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration")
        )
    }) {
        let kind = config["kind"].as_str().unwrap_or_default().to_string();
        let name = format!(
            "{}-{namespace}",
            config["metadata"]["name"].as_str().unwrap_or_default()
        );
        config["metadata"] = json!({"name": name});
        for hook in config["webhooks"].as_array_mut().into_iter().flatten() {
            let path = hook["clientConfig"]["service"]["path"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            hook["clientConfig"] =
                json!({"url": format!("https://{address}{path}"), "caBundle": ca_bundle});
            hook["namespaceSelector"] = json!({"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [namespace]}]});
        }
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource(&kind));
        let object: DynamicObject = serde_json::from_value(config)?;
        api.create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("installing {kind} {name}"))?;
        installed.installed.push((resource(&kind), name));
    }
    Ok(installed)
}

impl std::fmt::Debug for InstalledWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstalledWebhooks")
            .field("installed", &self.installed)
            .finish_non_exhaustive()
    }
}

impl InstalledWebhooks {
    pub async fn remove(self) -> Result<()> {
        for (resource, name) in self.installed {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
            api.delete(&name, &DeleteParams::default()).await?;
        }
        Ok(())
    }
}

/// The shipped webhook configurations of one operator, as installed, pointed at an
/// operator process for one test; [`Self::restore`] puts back what was installed.
pub struct RoutedWebhooks {
    client: kube::Client,
    before: Vec<(ApiResource, Value)>,
}

/// Points the installed configurations of deploy/<package> (their names as installed, the
/// CA left to the operator) at the server on `address`, for writes in `namespace` only.
pub async fn route_installed(
    client: &kube::Client,
    package: &str,
    namespace: &str,
    address: SocketAddr,
) -> Result<RoutedWebhooks> {
    let mut routed = RoutedWebhooks {
        client: client.clone(),
        before: Vec::new(),
    };
    for shipped in render(package)?.into_iter().filter(|o| {
        o["kind"]
            .as_str()
            .is_some_and(|k| k.ends_with("WebhookConfiguration"))
    }) {
        let resource = resource(shipped["kind"].as_str().unwrap_or_default());
        let name = shipped["metadata"]["name"].as_str().unwrap_or_default();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let installed = serde_json::to_value(
            api.get(name)
                .await
                .with_context(|| format!("{name}: deploy/{package} installs it"))?,
        )?;
        let mut routed_config = installed.clone();
        for hook in routed_config["webhooks"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            let path = hook["clientConfig"]["service"]["path"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            hook["clientConfig"] = json!({"url": format!("https://{address}{path}")});
            hook["namespaceSelector"] = json!({"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [namespace]}]});
        }
        api.replace(
            name,
            &PostParams::default(),
            &serde_json::from_value(routed_config)?,
        )
        .await
        .with_context(|| format!("routing {name}"))?;
        routed.before.push((resource, installed));
    }
    Ok(routed)
}

impl std::fmt::Debug for RoutedWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedWebhooks")
            .field("before", &self.before.len())
            .finish_non_exhaustive()
    }
}

impl RoutedWebhooks {
    /// Puts back the webhooks as installed (their CA bundles included).
    pub async fn restore(self) -> Result<()> {
        for (resource, before) in self.before {
            let name = before["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
            let mut current = serde_json::to_value(api.get(&name).await?)?;
            current["webhooks"] = before["webhooks"].clone();
            api.replace(
                &name,
                &PostParams::default(),
                &serde_json::from_value(current)?,
            )
            .await?;
        }
        Ok(())
    }
}

/// Points CRD `crd`'s conversion webhook at the server on `address` (an operator process
/// serving `/convert`), trusting `certificate`'s CA (or, with `None`, whatever CA the
/// operator writes there itself), as deploy/ does through its Service; returns the client
/// config it replaced, for [`restore_conversion`].
pub async fn route_conversion(
    client: &kube::Client,
    crd: &str,
    address: SocketAddr,
    certificate: Option<&WebhookCertificate>,
) -> Result<Value> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let before = serde_json::to_value(crds.get(crd).await?)?["spec"]["conversion"]["webhook"]["clientConfig"].clone();
    let ca_bundle = match certificate {
        Some(certificate) => {
            serde_json::to_value(ByteString(certificate.ca.pem().as_bytes().to_vec()))?
        }
        None => Value::Null,
    };
    let patch = json!({"spec": {"conversion": {"webhook": {"clientConfig": {
        "service": null, "url": format!("https://{address}/convert"), "caBundle": ca_bundle}}}}});
    crds.patch(
        crd,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .with_context(|| format!("routing {crd}'s conversion webhook"))?;
    Ok(before)
}

/// Puts back the conversion client config [`route_conversion`] replaced.
pub async fn restore_conversion(client: &kube::Client, crd: &str, before: Value) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut client_config = before;
    if client_config["url"].is_null() {
        client_config["url"] = Value::Null;
    }
    if client_config["caBundle"].is_null() {
        client_config["caBundle"] = Value::Null;
    }
    let patch = json!({"spec": {"conversion": {"webhook": {"clientConfig": client_config}}}});
    crds.patch(
        crd,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// The sample's invalid twin, `deploy/samples/invalid/<name>.yaml`, put in `namespace`.
pub fn invalid_twin(name: &str, namespace: &str) -> Result<Value> {
    let path = crate::manifests::deploy_dir()
        .join("samples/invalid")
        .join(format!("{name}.yaml"));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut object: Value = serde_yaml::from_str(&text)?;
    object["metadata"]["namespace"] = json!(namespace);
    Ok(object)
}
