//! The SagaOrchestrator harness: the shared one (`operator-harness`) with its CRD, the
//! PaymentService CRD as deploy/crds installs it (the orchestrator's dependencies; no
//! payment-service operator runs here: a test sets their status), and helpers for the sample.

use anyhow::{Context as _, Result};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use operator_core::tooling::ChildRef;
#[allow(unused_imports)]
pub use operator_harness::condition;
use operator_harness::conformance::{self, Subject};
pub use operator_harness::{Harness, HarnessBuilder};
use saga_orchestrator::controllers;
pub use saga_orchestrator::crd::SagaOrchestrator;
use serde_json::{Value, json};

pub const NS: &str = "payments";
pub const SAMPLE: &str = "payment-saga";
pub const SERVICES: [&str; 3] = [
    "fraud-screening",
    "ledger-service",
    "payment-initiation-service",
];

fn crd_file(file: &str) -> Result<CustomResourceDefinition> {
    let path = format!("{}/../../deploy/crds/{file}", env!("CARGO_MANIFEST_DIR"));
    Ok(serde_yaml::from_str(
        &std::fs::read_to_string(&path).context(path)?,
    )?)
}

/// A minimal CloudNativePG `Cluster` CRD: what the operator reads of it (its status).
pub fn cnpg_crd() -> Result<CustomResourceDefinition> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "clusters.postgresql.cnpg.io"},
        "spec": {"group": "postgresql.cnpg.io", "scope": "Namespaced",
            "names": {"kind": "Cluster", "plural": "clusters", "singular": "cluster", "listKind": "ClusterList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}
    }))?)
}

pub fn cluster() -> HarnessBuilder {
    Harness::builder(controllers)
        .crd(SagaOrchestrator::crd())
        .crd(crd_file("paymentservices.payments.io.yaml").expect("the PaymentService CRD"))
        .namespace(NS)
        .resource("payments.io/v1", "sagaorchestrators")
}

/// The sample file's documents of `kind`.
pub fn sample_documents(kind: &str) -> Result<Vec<Value>> {
    let path = format!(
        "{}/../../deploy/samples/{SAMPLE}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).context(path)?;
    Ok(operator_core::manifests::documents(&text)?
        .into_iter()
        .filter(|d| d["kind"] == kind)
        .collect())
}

pub fn sample() -> Result<Value> {
    sample_documents("SagaOrchestrator")?
        .into_iter()
        .next()
        .context("the sample's SagaOrchestrator")
}

/// The PaymentServices the sagas depend on, in v2, their stored version (a v1 write would
/// need the payment-service operator's conversion webhook).
fn payment_services(h: &Harness) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("payments.io", "v2", "PaymentService");
    Api::namespaced_with(
        h.client(),
        NS,
        &ApiResource::from_gvk_with_plural(&gvk, "paymentservices"),
    )
}

/// The SagaOrchestrator view of a harness.
pub trait Sagas {
    fn orchestrators(&self) -> Api<SagaOrchestrator>;
    async fn create_secret(&self) -> Result<()>;
    /// A PaymentService named `name`, its status Ready or not (as its operator would say).
    async fn payment_service(&self, name: &str, ready: bool) -> Result<()>;
    async fn set_ready(&self, name: &str, ready: bool) -> Result<()>;
    /// What the orchestrator reports running: `<saga>.<version>` → count.
    async fn report_in_flight(&self, counts: Value) -> Result<()>;
    fn status(&self, name: &str) -> Value;
    fn sagas_data(&self) -> Value;
    fn config_hash(&self) -> Value;
    async fn edit(&self, patch: Value) -> Result<()>;
}

impl Sagas for Harness {
    fn orchestrators(&self) -> Api<SagaOrchestrator> {
        Api::namespaced(self.client(), NS)
    }

    async fn create_secret(&self) -> Result<()> {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "saga-db-app", "namespace": NS},
            "stringData": {"username": "app", "password": "placeholder"}});
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(self.client(), NS)
            .create(&PostParams::default(), &serde_json::from_value(secret)?)
            .await?;
        Ok(())
    }

    async fn payment_service(&self, name: &str, ready: bool) -> Result<()> {
        let ps = json!({"apiVersion": "payments.io/v2", "kind": "PaymentService",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"version": "1.0.0", "image": format!("registry.example/{name}:1.0.0")}});
        payment_services(self)
            .create(&PostParams::default(), &serde_json::from_value(ps)?)
            .await?;
        self.set_ready(name, ready).await
    }

    async fn set_ready(&self, name: &str, ready: bool) -> Result<()> {
        let status = if ready { "True" } else { "False" };
        let patch = json!({"status": {"conditions": [{"type": "Ready", "status": status,
            "reason": "Test", "message": "set by the test", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        payment_services(self)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    async fn report_in_flight(&self, counts: Value) -> Result<()> {
        let patch = json!({"data": counts});
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(self.client(), NS)
            .patch(
                &format!("{SAMPLE}-inflight"),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    fn status(&self, name: &str) -> Value {
        self.status_of(name)
    }

    fn sagas_data(&self) -> Value {
        self.get("v1", "configmaps", &format!("{SAMPLE}-sagas"))
            .map(|c| c["data"].clone())
            .unwrap_or_default()
    }

    fn config_hash(&self) -> Value {
        self.get("apps/v1", "deployments", SAMPLE)
            .map(|d| {
                d["spec"]["template"]["metadata"]["annotations"]["payments.io/config-hash"].clone()
            })
            .unwrap_or_default()
    }

    async fn edit(&self, patch: Value) -> Result<()> {
        self.orchestrators()
            .patch(SAMPLE, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}

/// The sample running with its Secret and its three PaymentServices (Ready or not).
pub async fn start_sample(services_ready: bool) -> Result<Harness> {
    let h = cluster().start().await?;
    h.create_secret().await?;
    for s in SERVICES {
        h.payment_service(s, services_ready).await?;
    }
    h.create_as::<SagaOrchestrator>(sample()?).await?;
    h.eventually("Ready", |h| {
        condition(&h.status(SAMPLE), "Ready")["status"] == "True"
    })
    .await?;
    Ok(h)
}

/// The i-th orchestrator of the conformance and fault tests: Redis persistence (no Secret
/// needed beyond the one `create` makes), one saga.
pub fn orchestrator(i: usize) -> Value {
    let spec = json!({
        "image": "registry.example/saga:1.0", "version": "1.0",
        "replicas": 1 + i as i64 % 3,
        "persistence": {"type": "redis", "clusterName": "saga-store", "secretName": "saga-store"},
        "sagas": [{"name": "refund", "timeout": "1m", "steps": [
            {"name": "credit", "service": "ledger", "timeout": "5s",
             "action": {"method": "POST", "path": "/credit"},
             "compensation": {"method": "POST", "path": "/debit"}}]}]
    });
    operator_harness::resource::<SagaOrchestrator>(&format!("saga-{i:03}"), NS, spec)
}

/// The operator, as the conformance checks exercise it.
pub const CONFORMANCE: Subject = Subject {
    operator: &saga_orchestrator::OPERATOR,
    harness: || {
        cluster().object(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "saga-store", "namespace": NS}, "stringData": {"password": "x"}}))
    },
    resource: orchestrator,
    children: |name, _| {
        vec![
            ChildRef::new("apps/v1", "deployments", name),
            ChildRef::new("v1", "configmaps", format!("{name}-sagas")),
            ChildRef::new("v1", "configmaps", format!("{name}-inflight")),
            ChildRef::new("v1", "services", name),
        ]
    },
    kept_after_deletion: conformance::none,
    used_as_found: conformance::none,
    written_by_others: &["deployments"],
};
