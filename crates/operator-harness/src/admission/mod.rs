//! An operator's admission webhooks served over real HTTPS (a CA and certificate generated
//! for the test), and AdmissionReview bodies sent to them as the API server sends them.

use std::time::Duration;

use anyhow::{Context as _, Result};
use operator_core::OperatorDescriptor;
use operator_core::admission::{Admitted, ServingCertificate, WebhookServer};
use operator_core::descriptor::ServedResource;
use operator_core::readiness::Readiness;
use serde_json::{Value, json};
use testkit::tls::LocalCa;

mod cases;
pub use cases::{AdmissionCases, Change};

/// The answer to one review, as `kubectl` would show it.
#[derive(Clone, Debug)]
pub struct Answer {
    pub allowed: bool,
    pub message: String,
    /// The fields of the status causes, in order.
    pub fields: Vec<String>,
    pub warnings: Vec<String>,
    /// The object with the defaulting patch applied (mutating webhook only).
    pub patched: Option<Value>,
}

/// A webhook server on 127.0.0.1 for `admitted`, stopped when dropped.
#[derive(Debug)]
pub struct AdmissionHarness {
    admitted: &'static [Admitted],
    ca: LocalCa,
    port: u16,
    _stop: tokio::sync::watch::Sender<bool>,
    _dir: ScratchDir,
}

#[derive(Debug)]
struct ScratchDir(std::path::PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl AdmissionHarness {
    /// Serves `admitted`; `client` is what a validation reads the cluster through.
    pub async fn start(admitted: &'static [Admitted], client: kube::Client) -> Result<Self> {
        Self::start_as(admitted, &[], client, &[]).await
    }

    /// The operator's webhooks on an empty cluster, with the sample of `kind` in
    /// `deploy/samples/<sample>.yaml` (as JSON) that each test changes to break one rule. The
    /// sample is in the version the webhooks admit: converted by the operator's conversion
    /// first where it is written in another, as the API server does (`matchPolicy: Equivalent`).
    pub async fn with_sample(
        operator: &OperatorDescriptor,
        sample: &str,
        kind: &str,
    ) -> Result<(Self, Value)> {
        let client = testkit::ApiServer::new().client();
        let written = crate::sample_of_kind(sample, kind)?;
        let harness = Self::start(operator.admission, client).await?;
        let admitted = harness.admitted_for_kind(kind)?;
        let version = admitted.resource.api_version();
        if written["apiVersion"] == version.as_str() {
            return Ok((harness, written));
        }
        let convert = operator
            .resources
            .iter()
            .find(|r| r.resource.kind() == kind)
            .and_then(|r| r.convert)
            .with_context(|| format!("{sample} is not in {version} and nothing converts it"))?;
        let converted = convert(written, &version).map_err(anyhow::Error::msg)?;
        Ok((harness, converted))
    }

    /// [`Self::start`], also converting those of `served` that serve several versions on
    /// `/convert`, with a certificate that also holds `names` (the webhook Service's DNS
    /// name, for a routed Service).
    pub async fn start_as(
        admitted: &'static [Admitted],
        served: &'static [ServedResource],
        client: kube::Client,
        names: &[&str],
    ) -> Result<Self> {
        let ca = LocalCa::new("admission test CA")?;
        let dir = ca.serving_directory(names)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let server = WebhookServer::new(admitted, client, ServingCertificate::in_dir(&dir))
            .converting(served);
        tokio::spawn(server.serve(listener, Readiness::default(), stop_rx));
        Ok(Self {
            admitted,
            ca,
            port,
            _stop: stop,
            _dir: ScratchDir(dir),
        })
    }

    /// The validating webhook's answer to `operation` (`CREATE`, `UPDATE`) of `object`.
    pub async fn validate(
        &self,
        operation: &str,
        object: &Value,
        old: Option<&Value>,
    ) -> Result<Answer> {
        let admitted = self.admitted_for(object)?;
        self.send(
            &admitted.validate_path(),
            review(admitted, operation, object, old, None),
        )
        .await
    }

    /// The validating webhook's answer to `kubectl scale` of `object` from `from` to `to`.
    pub async fn scale(&self, object: &Value, from: i64, to: i64) -> Result<Answer> {
        let admitted = self.admitted_for(object)?;
        let scale = |replicas: i64| {
            json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": object["metadata"].clone(), "spec": {"replicas": replicas}})
        };
        let body = review(
            admitted,
            "UPDATE",
            &scale(to),
            Some(&scale(from)),
            Some("scale"),
        );
        self.send(&admitted.validate_path(), body).await
    }

    /// The mutating webhook's answer to creating `object`, with its patch applied.
    pub async fn mutate(&self, object: &Value) -> Result<Answer> {
        let admitted = self.admitted_for(object)?;
        let mut answer = self
            .send(
                &admitted.mutate_path(),
                review(admitted, "CREATE", object, None, None),
            )
            .await?;
        let mut patched = object.clone();
        if let Some(patch) = &answer.patched {
            let bytes: k8s_openapi::ByteString = serde_json::from_value(patch.clone())?;
            let patch: json_patch::Patch = serde_json::from_slice(&bytes.0)?;
            json_patch::patch(&mut patched, &patch)?;
        }
        answer.patched = Some(patched);
        Ok(answer)
    }

    /// Where the server listens, on 127.0.0.1.
    pub fn address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The CA bundle (base64 PEM, as a `caBundle` field holds it) that verifies the server.
    pub fn ca_bundle(&self) -> Value {
        serde_json::to_value(k8s_openapi::ByteString(self.ca.pem().as_bytes().to_vec()))
            .unwrap_or(Value::Null)
    }

    /// `object` as the mutating webhook leaves it: admitted, its defaults patched in.
    pub async fn defaulted(&self, object: &Value) -> Result<Value> {
        let answer = self.mutate(object).await?;
        anyhow::ensure!(answer.allowed, "refused: {}", answer.message);
        answer.patched.context("no patched object")
    }

    /// Posts a raw body to `path`: the HTTP status and body.
    pub async fn post(&self, path: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>)> {
        let url = format!("https://127.0.0.1:{}{path}", self.port);
        Ok(testkit::webhook::call(
            &url,
            self.ca.pem().as_bytes(),
            body,
            Duration::from_secs(10),
        )
        .await?)
    }

    fn admitted_for_kind(&self, kind: &str) -> Result<&'static Admitted> {
        self.admitted
            .iter()
            .find(|a| a.resource.kind() == kind)
            .with_context(|| format!("no webhook admits {kind}"))
    }

    fn admitted_for(&self, object: &Value) -> Result<&'static Admitted> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        self.admitted
            .iter()
            .find(|a| a.resource.api_version() == api_version && a.resource.kind() == kind)
            .with_context(|| format!("no webhook admits {api_version} {kind}"))
    }

    async fn send(&self, path: &str, body: Value) -> Result<Answer> {
        let (status, body) = self.post(path, serde_json::to_vec(&body)?).await?;
        anyhow::ensure!(
            status == 200,
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let review: Value = serde_json::from_slice(&body)?;
        let response = &review["response"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        Ok(Answer {
            allowed: response["allowed"] == true,
            message: response["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            fields: response["status"]["details"]["causes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["field"].as_str().map(str::to_string))
                .collect(),
            warnings: strings(&response["warnings"]),
            patched: response.get("patch").cloned(),
        })
    }
}

fn review(
    admitted: &Admitted,
    operation: &str,
    object: &Value,
    old: Option<&Value>,
    sub_resource: Option<&str>,
) -> Value {
    let admitted = admitted.resource.resource();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "e2a1c7d0-test",
            "kind": {"group": admitted.group, "version": admitted.version, "kind": admitted.kind},
            "resource": {"group": admitted.group, "version": admitted.version, "resource": admitted.plural},
            "subResource": sub_resource,
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {"username": "platform-engineer"},
            "object": object,
            "oldObject": old,
            "dryRun": false,
        }
    })
}

/// `base` with `patch` merged in (RFC 7386: `null` removes a field).
pub fn merged(base: &Value, patch: Value) -> Value {
    let mut object = base.clone();
    json_patch::merge(&mut object, &patch);
    object
}
