//! Webhooks that work with `deploy/<operator>` alone: the operator keeps its own serving
//! certificate, the pattern of Gatekeeper's cert-controller and Knative's webhooks, so
//! cert-manager is an option and not a prerequisite.
//!
//! - One Secret in the operator's namespace holds a CA and the serving certificate it signed
//!   ([`super::certificates`]). Whichever replica finds it missing creates it (a create is
//!   atomic: the others get 409 and read the winner's); whichever finds it due replaces it
//!   with the resourceVersion it read (the others get 409 and read again).
//! - Every replica serves what the Secret holds and re-reads it every [`CHECK_INTERVAL`]:
//!   a renewal reaches every replica without a restart, months before the old certificate
//!   expires. Until a certificate is loaded, `/readyz` says so and the Service sends the API
//!   server elsewhere.
//! - The leader writes the CA into the `caBundle` of the operator's webhook configurations
//!   and of the CRDs that convert through it: a JSON patch guarded by the object's UID, only
//!   where the bundle differs, so a converged check writes nothing.
//!
//! A Secret of that name that the operator did not create is never touched: the webhooks
//! stay unready and say which Secret is in the way.

use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::ServingCertificate;
use super::certificates::{CertificateSet, IssueError, Renewal, issue, renewal, serving_expiry};
use crate::OperatorIdentity;
use crate::readiness::Readiness;

/// How often every replica reads the Secret (and the leader checks the CA bundles).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// The label that marks the Secret as the operator's own.
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// The names of an operator's webhook objects, as deploy/ installs them and the operator
/// finds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookNames {
    /// The Service in front of the webhook server (`<binary>-webhook`).
    pub service: String,
    /// The ValidatingWebhookConfiguration (`<package>-validator`).
    pub validating: String,
    /// The MutatingWebhookConfiguration (`<package>-defaulter`).
    pub mutating: String,
    /// The Secret the operator keeps its certificate in (`<binary>-webhook-certificate`).
    pub secret: String,
}

impl WebhookNames {
    pub fn of(identity: &OperatorIdentity) -> Self {
        Self {
            service: format!("{}-webhook", identity.manager),
            validating: format!("{}-validator", identity.app_name),
            mutating: format!("{}-defaulter", identity.app_name),
            secret: format!("{}-webhook-certificate", identity.manager),
        }
    }

    /// The names the API server may call the Service by from namespace `namespace`, what
    /// the serving certificate must name.
    pub fn service_hosts(&self, namespace: &str) -> Vec<String> {
        vec![
            format!("{}.{namespace}.svc", self.service),
            format!("{}.{namespace}.svc.cluster.local", self.service),
        ]
    }
}

/// Where the operator keeps its certificate and whom it tells about the CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfManagedCertificates {
    pub identity: OperatorIdentity,
    /// The operator's namespace, where the Secret lives.
    pub namespace: String,
    pub names: WebhookNames,
    /// What the serving certificate names: the Service's names and any the config adds.
    pub hosts: Vec<String>,
}

impl SelfManagedCertificates {
    /// The defaults for `identity` in `namespace`, with `extra_hosts` also named.
    pub fn new(identity: OperatorIdentity, namespace: &str, extra_hosts: &[String]) -> Self {
        let names = WebhookNames::of(&identity);
        let mut hosts = names.service_hosts(namespace);
        for host in extra_hosts {
            if !hosts.contains(host) {
                hosts.push(host.clone());
            }
        }
        Self {
            identity,
            namespace: namespace.to_string(),
            names,
            hosts,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    #[error(
        "Secret {namespace}/{name} exists but was not created by {manager}: delete or rename it so the operator can create its webhook certificate there, or pass --webhook-cert-dir to serve a certificate you manage"
    )]
    NotOurs {
        namespace: String,
        name: String,
        manager: String,
    },
    #[error(
        "cannot read or write the webhook certificate Secret {namespace}/{name}: {source}; the operator's Role in its namespace must allow get, create and update on it"
    )]
    Secret {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error(
        "other replicas kept renewing the webhook certificate Secret {namespace}/{name} at the same time; trying again"
    )]
    Contended { namespace: String, name: String },
    #[error(
        "cannot write the CA bundle into {kind} {name}: {source}; the operator's ClusterRole must allow get and patch on it"
    )]
    Inject {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Keeps the certificate of one operator's webhooks.
#[derive(Clone)]
pub struct CertificateKeeper {
    client: kube::Client,
    config: SelfManagedCertificates,
    /// The CRDs whose conversion webhook this server answers.
    crds: Vec<String>,
    interval: Duration,
}

impl std::fmt::Debug for CertificateKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateKeeper")
            .field("config", &self.config)
            .field("crds", &self.crds)
            .finish_non_exhaustive()
    }
}

impl CertificateKeeper {
    pub fn new(client: kube::Client, config: SelfManagedCertificates, crds: Vec<String>) -> Self {
        Self {
            client,
            config,
            crds,
            interval: CHECK_INTERVAL,
        }
    }

    /// Checks every `interval` instead of [`CHECK_INTERVAL`].
    #[must_use]
    pub fn checking_every(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    fn secret_error(&self, source: kube::Error) -> KeeperError {
        KeeperError::Secret {
            namespace: self.config.namespace.clone(),
            name: self.config.names.secret.clone(),
            source,
        }
    }

    /// Runs until dropped: keeps the Secret current, serves it through `serving`, reports
    /// on `readiness` while nothing can be served, and while `leading` writes the CA where
    /// the API server reads it.
    pub async fn keep(
        self,
        serving: ServingCertificate,
        readiness: Readiness,
        mut leading: watch::Receiver<bool>,
    ) {
        let origin = format!(
            "Secret {}/{}",
            self.config.namespace, self.config.names.secret
        );
        readiness.set_problem(Some(format!(
            "webhook certificate: not read from {origin} yet"
        )));
        loop {
            match self.settle(SystemTime::now()).await {
                Ok(set) => {
                    let files = (set.cert.clone().into_bytes(), set.key.clone().into_bytes());
                    match serving.install(files, &origin, &origin) {
                        Ok(true) => {
                            let expires = serving_expiry(&set).map(jiff_time);
                            tracing::info!(secret = %origin, expires = ?expires, "webhook certificate loaded");
                            readiness.set_problem(None);
                        }
                        Ok(false) => {}
                        Err(error) => {
                            tracing::error!(%error, "webhook certificate unusable");
                            readiness.set_problem(Some(format!("webhook certificate: {error}")));
                        }
                    }
                    if *leading.borrow_and_update()
                        && let Err(error) = self.inject(&set.ca_bundle).await
                    {
                        tracing::warn!(%error, "the API server may not trust the webhook yet");
                    }
                }
                Err(error) if serving.is_loaded() => {
                    tracing::warn!(%error, "webhook certificate not checked; serving the one loaded");
                }
                Err(error) => {
                    tracing::error!(%error, "no webhook certificate to serve");
                    readiness.set_problem(Some(format!("webhook certificate: {error}")));
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                // A new leader writes the bundle at once.
                changed = leading.changed() => {
                    if changed.is_err() {
                        // Nobody will say again: wait out the interval instead.
                        tokio::time::sleep(self.interval).await;
                    }
                }
            }
        }
    }

    /// The certificate set the Secret holds once it is current at `now`: created or
    /// renewed here, or by another replica first.
    pub async fn settle(&self, now: SystemTime) -> Result<CertificateSet, KeeperError> {
        let (secrets, config) = (self.secrets(), &self.config);
        for _ in 0..3 {
            let existing = secrets
                .get_opt(&config.names.secret)
                .await
                .map_err(|e| self.secret_error(e))?;
            if let Some(secret) = &existing
                && !self.is_ours(secret)
            {
                return Err(KeeperError::NotOurs {
                    namespace: config.namespace.clone(),
                    name: config.names.secret.clone(),
                    manager: config.identity.manager.to_string(),
                });
            }
            let current = existing
                .as_ref()
                .and_then(|s| s.data.as_ref())
                .and_then(CertificateSet::from_data);
            let due = match (renewal(current.as_ref(), &config.hosts, now), &current) {
                (None, Some(current)) => return Ok(current.clone()),
                (due, _) => due.unwrap_or(Renewal::Authority),
            };
            let issued = issue(
                current.as_ref(),
                due,
                &format!("{} webhook CA", config.identity.manager),
                &config.hosts,
                now,
            )?;
            let written = match existing {
                None => {
                    secrets
                        .create(&PostParams::default(), &self.secret(&issued))
                        .await
                }
                Some(mut secret) => {
                    // Replaced as read: its resourceVersion makes a concurrent renewal a 409.
                    secret.metadata.managed_fields = None;
                    secret.data = Some(issued.to_data());
                    secrets
                        .replace(&config.names.secret, &PostParams::default(), &secret)
                        .await
                }
            };
            match written {
                Ok(_) => {
                    tracing::info!(secret = %config.names.secret, renewed = ?due, "webhook certificate issued");
                    return Ok(issued);
                }
                // Another replica was first: read what it wrote.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(self.secret_error(e)),
            }
        }
        Err(KeeperError::Contended {
            namespace: config.namespace.clone(),
            name: config.names.secret.clone(),
        })
    }

    fn is_ours(&self, secret: &Secret) -> bool {
        secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY))
            .is_some_and(|m| m == self.config.identity.manager)
    }

    fn secret(&self, set: &CertificateSet) -> Secret {
        let identity = &self.config.identity;
        Secret {
            metadata: ObjectMeta {
                name: Some(self.config.names.secret.clone()),
                namespace: Some(self.config.namespace.clone()),
                labels: Some(
                    [
                        (MANAGED_BY, identity.manager),
                        ("app.kubernetes.io/name", identity.app_name),
                        ("app.kubernetes.io/component", "webhook"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/tls".to_string()),
            data: Some(set.to_data()),
            ..Secret::default()
        }
    }

    /// Writes `bundle` as the `caBundle` of the operator's webhook configurations (those it
    /// labelled as its own) and of its CRDs' conversion webhooks, where it differs; returns
    /// how many objects it wrote. An object that is not installed is skipped: the operator
    /// may run without its webhook configurations.
    pub async fn inject(&self, bundle: &str) -> Result<usize, KeeperError> {
        let bundle = ByteString(bundle.as_bytes().to_vec());
        let encoded = serde_json::to_value(&bundle).unwrap_or_default();
        let mut written = 0;
        let names = &self.config.names;
        for (kind, name) in [
            ("ValidatingWebhookConfiguration", &names.validating),
            ("MutatingWebhookConfiguration", &names.mutating),
        ] {
            let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
            let plural = format!("{}s", kind.to_lowercase());
            let resource = ApiResource::from_gvk_with_plural(&gvk, &plural);
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
            if let Some(config) = self.labelled(api.get_opt(name).await, kind, name)? {
                let ops = webhook_ops(&config.data["webhooks"], &encoded);
                let uid = config.metadata.uid.as_deref();
                written += self.write(&api, kind, name, uid, ops).await?;
            }
        }
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for name in &self.crds {
            let crd = crds
                .get_opt(name)
                .await
                .map_err(|source| KeeperError::Inject {
                    kind: "CustomResourceDefinition",
                    name: name.clone(),
                    source,
                })?;
            let Some(crd) = crd else { continue };
            let conversion = crd.spec.conversion.as_ref();
            let through_webhook = conversion.is_some_and(|c| c.strategy == "Webhook");
            let current = conversion
                .and_then(|c| c.webhook.as_ref())
                .and_then(|w| w.client_config.as_ref())
                .map(|c| &c.ca_bundle);
            let ops = match current {
                Some(current) if through_webhook && current.as_ref() != Some(&bundle) => vec![
                    json!({"op": "test", "path": "/spec/conversion/strategy", "value": "Webhook"}),
                    json!({"op": "add", "path": "/spec/conversion/webhook/clientConfig/caBundle", "value": bundle}),
                ],
                _ => Vec::new(),
            };
            written += self
                .write(
                    &crds,
                    "CustomResourceDefinition",
                    name,
                    crd.metadata.uid.as_deref(),
                    ops,
                )
                .await?;
        }
        Ok(written)
    }

    /// The configuration read, if it exists and carries the operator's name label.
    fn labelled<K: kube::Resource>(
        &self,
        read: Result<Option<K>, kube::Error>,
        kind: &'static str,
        name: &str,
    ) -> Result<Option<K>, KeeperError> {
        let found = read.map_err(|source| KeeperError::Inject {
            kind,
            name: name.to_string(),
            source,
        })?;
        Ok(found.filter(|config| {
            let ours = config
                .meta()
                .labels
                .as_ref()
                .and_then(|l| l.get("app.kubernetes.io/name"))
                .is_some_and(|n| n == self.config.identity.app_name);
            if !ours {
                tracing::warn!(
                    kind,
                    name,
                    "not labelled app.kubernetes.io/name={}: its caBundle is left alone",
                    self.config.identity.app_name
                );
            }
            ours
        }))
    }

    /// Applies `ops` (if any) to the object `name` of UID `uid` only.
    async fn write<K>(
        &self,
        api: &Api<K>,
        kind: &'static str,
        name: &str,
        uid: Option<&str>,
        ops: Vec<Value>,
    ) -> Result<usize, KeeperError>
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        if ops.is_empty() {
            return Ok(0);
        }
        let mut guarded = vec![json!({"op": "test", "path": "/metadata/uid", "value": uid})];
        guarded.extend(ops);
        let inject_error = |source| KeeperError::Inject {
            kind,
            name: name.to_string(),
            source,
        };
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(guarded))
            .map_err(|e| inject_error(kube::Error::SerdeError(e)))?;
        let params = PatchParams::default();
        api.patch(name, &params, &Patch::Json::<()>(patch))
            .await
            .map_err(inject_error)?;
        tracing::info!(kind, name, "CA bundle written");
        Ok(1)
    }
}

/// JSON patch operations that set `bundle` (base64, as JSON holds it) on each of `webhooks`
/// whose `caBundle` differs; each guarded by the webhook's name at that index.
fn webhook_ops(webhooks: &Value, bundle: &Value) -> Vec<Value> {
    webhooks
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, hook)| hook["clientConfig"]["caBundle"] != *bundle)
        .flat_map(|(i, hook)| {
            [
                json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": hook["name"]}),
                json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": bundle}),
            ]
        })
        .collect()
}

fn jiff_time(t: SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::try_from(t).unwrap_or_default()
}
