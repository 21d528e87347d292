//! The demo's admission webhooks, wired as in a cluster with cert-manager: each operator
//! serves its webhooks with a certificate for its webhook Service's DNS name, issued by a CA
//! made for the demo; the Validating and Mutating WebhookConfigurations of
//! `deploy/<operator>` are installed with that CA injected (cert-manager's CA
//! injector's job), and testkit routes each Service to the operator's local port. The
//! samples then go in through admission, and each sample's invalid twin
//! (`deploy/samples/invalid/`) must be refused by its webhook.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use operator_core::OperatorDescriptor;
use serde_json::{Value, json};
use testkit::ApiServer;
use testkit::tls::LocalCa;

/// Where one operator serves its webhooks.
#[derive(Debug)]
pub struct Webhooks {
    pub address: SocketAddr,
    pub cert_dir: PathBuf,
}

fn documents(path: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(operator_core::manifests::documents(&text)?)
}

/// The demo's stand-in for cert-manager: a CA that issues each webhook's certificate, and
/// whose certificate is injected where `cert-manager.io/inject-ca-from` asks for it.
pub struct DemoCa(LocalCa);

impl DemoCa {
    pub fn new() -> Result<Self> {
        Ok(Self(LocalCa::new("payments-engine demo webhook CA")?))
    }

    fn bundle(&self) -> Result<Value> {
        Ok(serde_json::to_value(k8s_openapi::ByteString(
            self.0.pem().as_bytes().to_vec(),
        ))?)
    }

    /// Installs `crd`, the CA injected into its conversion webhook if it has one.
    pub fn install_crd(&self, server: &ApiServer, mut crd: Value) -> Result<()> {
        if crd["spec"]["conversion"]["strategy"] == "Webhook" {
            crd["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] = self.bundle()?;
        }
        server
            .create_from_yaml(&serde_json::to_string(&crd)?)
            .map_err(|e| anyhow::anyhow!("installing {}: {e:?}", crd["metadata"]["name"]))?;
        Ok(())
    }

    /// Installs the CRDs of `deploy/crds`.
    pub fn install_crds(&self, root: &Path, server: &ApiServer) -> Result<()> {
        for file in yaml_files(&root.join("deploy/crds"))? {
            for crd in documents(&file)? {
                self.install_crd(server, crd)?;
            }
        }
        Ok(())
    }

    /// Wires `operator`'s webhooks as `deploy/admission/<operator>` (cert-manager) does: its
    /// Service's certificate issued into `cert_dir`, the Service routed to a free loopback
    /// address (returned: the operator serves there), and its Validating and Mutating
    /// WebhookConfigurations installed with this CA injected.
    pub fn wire(
        &self,
        root: &Path,
        server: &ApiServer,
        operator: &OperatorDescriptor,
        cert_dir: &Path,
    ) -> Result<SocketAddr> {
        let objects = documents(
            &root
                .join("deploy")
                .join(operator.package())
                .join("webhooks.yaml"),
        )?;
        let service = objects
            .iter()
            .find(|o| o["kind"] == "Service")
            .context("the webhook Service")?;
        let (name, namespace) = (
            service["metadata"]["name"].as_str().unwrap_or_default(),
            service["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default(),
        );
        let issued = self
            .0
            .server_certificate(&[&format!("{name}.{namespace}.svc")])?;
        std::fs::create_dir_all(cert_dir)?;
        std::fs::write(cert_dir.join("tls.crt"), issued.cert_pem)?;
        std::fs::write(cert_dir.join("tls.key"), issued.key_pem)?;
        let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        server.route_service(namespace, name, 443, address);
        let bundle = self.bundle()?;
        for mut configuration in objects.into_iter().filter(|o| {
            o["kind"]
                .as_str()
                .is_some_and(|k| k.ends_with("WebhookConfiguration"))
        }) {
            for hook in configuration["webhooks"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                hook["clientConfig"]["caBundle"] = bundle.clone();
            }
            server
                .create_from_yaml(&serde_json::to_string(&configuration)?)
                .map_err(|e| {
                    anyhow::anyhow!("installing {}: {e:?}", configuration["metadata"]["name"])
                })?;
        }
        Ok(address)
    }
}

/// The YAML files of `dir` (not its kustomization, not its subfolders), in name order.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml")
                && p.file_name().is_some_and(|n| n != "kustomization.yaml")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Certificates, ports and configurations for every operator's webhooks.
pub fn install(
    root: &Path,
    server: &ApiServer,
    work: &Path,
    ca: &DemoCa,
    operators: &[OperatorDescriptor],
) -> Result<Vec<Webhooks>> {
    operators
        .iter()
        .map(|operator| {
            let cert_dir = work.join("webhook-certs").join(operator.binary_name());
            let address = ca.wire(root, server, operator, &cert_dir)?;
            Ok(Webhooks { address, cert_dir })
        })
        .collect()
}

/// Waits until every webhook server accepts connections (the operators are up).
pub async fn reachable(webhooks: &[Webhooks], limit: Duration) -> Result<()> {
    let started = Instant::now();
    for webhook in webhooks {
        while tokio::net::TcpStream::connect(webhook.address)
            .await
            .is_err()
        {
            if started.elapsed() > limit {
                bail!("no webhook server on {} within {limit:?}", webhook.address);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

fn api(
    client: &kube::Client,
    object: &Value,
    operators: &[OperatorDescriptor],
) -> Result<Api<DynamicObject>> {
    let (group, version) = object["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
        .unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let plural = operators
        .iter()
        .flat_map(|o| o.admission)
        .find(|a| a.resource.group() == group && a.resource.kind() == kind)
        .map(|a| a.resource.plural())
        .with_context(|| format!("no operator serves {group}/{kind}"))?;
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural);
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    Ok(Api::namespaced_with(client.clone(), namespace, &resource))
}

/// Creates every custom resource of the samples through the API, so admission sees them as a
/// cluster's would; returns how many.
pub async fn create_samples(
    root: &Path,
    client: &kube::Client,
    operators: &[OperatorDescriptor],
) -> Result<usize> {
    let mut created = 0;
    for file in yaml_files(&root.join("deploy/samples"))? {
        for object in documents(&file)? {
            let resource: DynamicObject = serde_json::from_value(object.clone())?;
            api(client, &object, operators)?
                .create(&PostParams::default(), &resource)
                .await
                .with_context(|| format!("{} was refused", file.display()))?;
            created += 1;
        }
    }
    Ok(created)
}

/// Replaces each running sample with its invalid twin (`kubectl replace`, a bad edit);
/// returns one line per twin with the refusal, or fails if a twin is admitted.
pub async fn refuse_twins(
    root: &Path,
    client: &kube::Client,
    operators: &[OperatorDescriptor],
) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for file in yaml_files(&root.join("deploy/samples/invalid"))? {
        for mut object in documents(&file)? {
            let api = api(client, &object, operators)?;
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let running = api
                .get(&name)
                .await
                .with_context(|| format!("the sample {name} runs"))?;
            object["metadata"]["resourceVersion"] = json!(running.metadata.resource_version);
            let resource: DynamicObject = serde_json::from_value(object.clone())?;
            match api.replace(&name, &PostParams::default(), &resource).await {
                Err(kube::Error::Api(status)) if status.message.contains("denied the request") => {
                    lines.push(format!(
                        "deploy/samples/invalid/{}: {}",
                        file.file_name().unwrap_or_default().to_string_lossy(),
                        status.message
                    ));
                }
                Err(e) => bail!("{}: refused, but not by its webhook: {e}", file.display()),
                Ok(_) => bail!("{}: the invalid twin was admitted", file.display()),
            }
        }
    }
    Ok(lines)
}
