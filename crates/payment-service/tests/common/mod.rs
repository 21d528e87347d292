//! The PaymentService harness: the shared one (`operator-harness`) with the CRD, the
//! `payments` namespace and the seed's TLS Secret, and helpers for the seed's example.

use anyhow::Result;
use k8s_openapi::api::core::v1::Secret;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use operator_core::monitoring::ServiceMonitor;
use operator_core::prometheus::MetricsQuery;
use operator_core::tooling::ChildRef;
use operator_harness::conformance::Subject;
pub use operator_harness::{Harness, HarnessBuilder, condition};
use payment_service::controllers;
pub use payment_service::crd::PaymentService;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub const NS: &str = "payments";
/// The seed's example.
pub const SEED: &str = "payment-initiation-service";

/// What the cluster has before the operator starts.
#[derive(Default)]
pub struct Setup {
    /// Install the Prometheus Operator's ServiceMonitor CRD.
    pub prometheus_operator: bool,
    /// Leave out the seed's TLS Secret.
    pub without_tls_secret: bool,
    /// The resync interval (300 ms unless set).
    pub resync: Option<Duration>,
}

/// The cluster: the CRD and the namespace; the operator's clock is the harness's.
pub fn cluster() -> HarnessBuilder {
    cluster_reading(None)
}

/// [`cluster`], the operator reading canary analysis metrics from `prometheus`.
pub fn cluster_reading(prometheus: Option<Arc<dyn MetricsQuery>>) -> HarnessBuilder {
    Harness::builder(move |rt| controllers(rt, prometheus.clone()))
        .crd(PaymentService::crd())
        .namespace(NS)
        .resource("payments.io/v2", "paymentservices")
}

pub async fn start(setup: Setup) -> Result<Harness> {
    let mut builder = cluster();
    if setup.prometheus_operator {
        builder = builder.crd(ServiceMonitor::crd());
    }
    if let Some(resync) = setup.resync {
        builder = builder.resync(resync);
    }
    let mut h = builder.prepare().await?;
    if !setup.without_tls_secret {
        create_tls_secret(&h.client()).await?;
    }
    h.start_operator();
    Ok(h)
}

/// The seed's `payment-gateway-tls`, as cert-manager would issue it (the content is a
/// stand-in: nothing here reads it).
pub async fn create_tls_secret(client: &kube::Client) -> Result<()> {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "payment-gateway-tls"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "stand-in", "tls.key": "stand-in"}
    }))?;
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

/// The seed's example from deploy/samples, as the API server stores it (converted to v2).
pub fn seed_sample() -> Result<PaymentService> {
    sample_with(|_| {})
}

/// The seed's service as a canary of two steps of a minute's pause each, on 4 fixed replicas.
pub fn canary(spec: &mut Value) {
    spec["deploymentStrategy"] = json!({
        "type": "Canary",
        "progressDeadlineSeconds": 120,
        "canarySteps": [
            {"setWeight": 25, "pause": {"duration": "1m"}},
            {"setWeight": 50, "pause": {"duration": "1m"}},
        ],
    });
    spec["autoscaling"]["enabled"] = json!(false);
    spec["replicas"] = json!(4);
}

/// A spec patch moving the seed's service to `version`.
pub fn upgrade(version: &str) -> Value {
    json!({"version": version, "image": format!("acr.azurecr.io/payment-initiation-service:{version}")})
}

pub const IMAGE_15: &str = "acr.azurecr.io/payment-initiation-service:1.5.0";
pub const IMAGE_16: &str = "acr.azurecr.io/payment-initiation-service:1.6.0";

/// The seed's example with `edit` applied to its spec as v1 writes it (the seed's shape),
/// then converted to v2 as the API server stores it.
pub fn sample_with(edit: impl FnOnce(&mut Value)) -> Result<PaymentService> {
    let mut value: Value = operator_harness::sample(SEED)?;
    edit(&mut value["spec"]);
    let stored =
        payment_service::crd::conversion::convert(value, payment_service::crd::conversion::V2)?;
    Ok(serde_json::from_value(stored)?)
}

/// The PaymentService view of a harness: the seed's example and its children.
pub trait Payments {
    fn services(&self) -> Api<PaymentService>;
    fn deployment(&self, name: &str) -> Option<Value>;
    fn image_of(&self, deployment: &str) -> Option<String>;
    /// The seed example's status.
    fn status(&self) -> Value;
    /// The seed example's condition of `type_`.
    fn condition(&self, type_: &str) -> Value;
    async fn create(&self, ps: &PaymentService) -> Result<()>;
    /// Merges `spec` into the seed example's spec.
    async fn patch_spec(&self, spec: Value) -> Result<()>;
    /// Creates `ps` and waits until it is Running.
    async fn create_running(&self, ps: &PaymentService) -> Result<()>;
}

impl Payments for Harness {
    fn services(&self) -> Api<PaymentService> {
        Api::namespaced(self.client(), NS)
    }

    fn deployment(&self, name: &str) -> Option<Value> {
        self.get("apps/v1", "deployments", name)
    }

    fn image_of(&self, deployment: &str) -> Option<String> {
        self.deployment(deployment).and_then(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .map(String::from)
        })
    }

    fn status(&self) -> Value {
        self.status_of(SEED)
    }

    fn condition(&self, type_: &str) -> Value {
        condition(&Payments::status(self), type_)
    }

    async fn create(&self, ps: &PaymentService) -> Result<()> {
        self.services().create(&PostParams::default(), ps).await?;
        Ok(())
    }

    async fn patch_spec(&self, spec: Value) -> Result<()> {
        self.services()
            .patch(
                SEED,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": spec })),
            )
            .await?;
        Ok(())
    }

    async fn create_running(&self, ps: &PaymentService) -> Result<()> {
        self.create(ps).await?;
        self.eventually("Running", |h| h.status()["phase"] == "Running")
            .await
    }
}

/// The i-th service of the conformance and fault tests; every fourth has backups on, so
/// those children are exercised too.
pub fn service(i: usize) -> Value {
    let spec = json!({
        "version": "1.0.0",
        "image": "registry.example/payments:1.0.0",
        "replicas": 2,
        "config": {"database": {"clusterName": "db", "poolSize": 10}},
        "security": {"rbac": {"enabled": true}},
        "backup": {"enabled": has_backup(i)},
    });
    operator_harness::resource::<PaymentService>(&format!("svc-{i:03}"), NS, spec)
}

pub fn has_backup(i: usize) -> bool {
    i.is_multiple_of(4)
}

/// The operator, as the conformance checks exercise it.
pub const CONFORMANCE: Subject = Subject {
    operator: &payment_service::OPERATOR,
    harness: cluster,
    resource: service,
    children: |name, ps| {
        let mut children = vec![
            ChildRef::new("apps/v1", "deployments", name),
            ChildRef::new("v1", "services", name),
            ChildRef::new("policy/v1", "poddisruptionbudgets", name),
            ChildRef::new("v1", "serviceaccounts", name),
            ChildRef::new("networking.k8s.io/v1", "networkpolicies", name),
        ];
        if ps["spec"]["backup"]["enabled"] == true {
            let backup = format!("{name}-backup");
            children.extend([
                ChildRef::new("v1", "serviceaccounts", backup.clone()),
                ChildRef::new("batch/v1", "cronjobs", backup.clone()),
                ChildRef::new("rbac.authorization.k8s.io/v1", "roles", backup.clone()),
                ChildRef::new("rbac.authorization.k8s.io/v1", "rolebindings", backup),
                ChildRef::new("v1", "persistentvolumeclaims", format!("{name}-backups")),
            ]);
        }
        children
    },
    kept_after_deletion: |name, ps| {
        if ps["spec"]["backup"]["enabled"] == true {
            let claim = format!("{name}-backups");
            vec![ChildRef::new("v1", "persistentvolumeclaims", claim)]
        } else {
            Vec::new()
        }
    },
    // The account the resource runs as is the user's when it exists.
    used_as_found: |name, _| vec![ChildRef::new("v1", "serviceaccounts", name)],
    written_by_others: &["deployments", "horizontalpodautoscalers"],
};
