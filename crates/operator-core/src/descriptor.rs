//! One operator as the project's tooling sees it. Each operator crate exports one
//! [`OperatorDescriptor`] (`payment_service::OPERATOR`); its `main` runs it, and
//! `cargo xtask crds`, `demo`, `bench` and the e2e suite iterate the one list of them in
//! `xtask`, so a new operator is wired into all of them by adding it there.

use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use crate::metrics::Metrics;
use crate::runtime::config::RuntimeConfig;
use crate::runtime::{OperatorBinary, Runtime, RuntimeError, run, shutdown_signal, telemetry};
use tokio::sync::watch;

/// An operator: what it is called, what it serves, how it runs, how it is exercised.
#[derive(Clone, Copy)]
pub struct OperatorDescriptor {
    /// The binary: its identity (the binary's name is its field manager), config section
    /// and version.
    pub binary: OperatorBinary,
    /// The cargo package; also its kustomize overlay, `deploy/<package>`.
    pub package: &'static str,
    /// The custom resources it serves.
    pub resources: &'static [ServedResource],
    /// Its CRDs, generated from its types.
    pub crds: fn() -> Vec<CustomResourceDefinition>,
    /// What its admission webhooks admit: a validating and a mutating webhook per kind.
    pub admission: &'static [crate::admission::Admitted],
    /// The kinds its conversion webhook converts between their CRD's versions.
    pub conversions: &'static [crate::admission::Converted],
    /// Its controllers, as the binary runs them.
    pub controllers: fn(&Runtime) -> Vec<BoxFuture<'static, ()>>,
    /// Registers its domain series (what its alerts may read) on a registry.
    pub metrics: fn(&Metrics),
    /// Its section of the config file in `cargo xtask demo` (YAML, empty for none): what
    /// the in-memory demo cannot do (reach a sample's partners) is switched off here.
    pub demo_settings: &'static str,
    /// The load `cargo xtask bench` puts on it.
    pub bench: BenchWorkload,
}

impl OperatorDescriptor {
    /// The entry point of an operator binary: parses flags, reads the config file, installs
    /// logging and tracing, connects, serves the admin endpoints, campaigns for the lease when
    /// leader election is on, and runs the operator: its controllers watch on every replica and
    /// reconcile while it leads; any other service it returns (a webhook) serves on every
    /// replica. Returns on
    /// SIGTERM/SIGINT (after in-flight reconciles finish, bounded, and the lease is released),
    /// or with an error if leadership is lost.
    pub async fn main(&self) -> Result<(), RuntimeError> {
        let binary = self.binary;
        let flags = binary.parse_flags();
        let config = RuntimeConfig::resolve(&flags, &binary, |k| std::env::var(k).ok())?;
        let _telemetry = telemetry::init(binary.identity.manager, config.log_format)?;
        let client = kube::Client::try_default()
            .await
            .map_err(|e| RuntimeError::ClientConfig(e.to_string()))?;
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested");
            stop_tx.send_replace(true);
        });
        let (controllers, admitted, converted) =
            (self.controllers, self.admission, self.conversions);
        run(client, config, Metrics::new(), stop_rx, move |runtime| {
            let mut services = controllers(runtime);
            services.extend(runtime.admission_webhooks(admitted, converted));
            services
        })
        .await
    }

    /// The binary's file name (also its field manager and event reporter).
    pub fn binary_name(&self) -> &'static str {
        self.binary.identity.manager
    }
}

impl std::fmt::Debug for OperatorDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorDescriptor")
            .field("package", &self.package)
            .field("binary", &self.binary_name())
            .finish_non_exhaustive()
    }
}

/// A custom resource an operator serves, and what "converged" means for one object of it.
#[derive(Clone, Copy, Debug)]
pub struct ServedResource {
    /// `payments.io/v1`.
    pub api_version: &'static str,
    /// `paymentservices`.
    pub plural: &'static str,
    /// `kubectl get <short name>`.
    pub short_name: &'static str,
    /// Whether the object (as JSON) has converged: its status says it runs as specified.
    pub converged: fn(&Value) -> bool,
}

/// A child object, by API and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildRef {
    pub api_version: &'static str,
    pub plural: &'static str,
    pub name: String,
}

/// N resources of the operator's first [`ServedResource`] and one spec change whose effect
/// on a child is timed.
#[derive(Clone, Copy, Debug)]
pub struct BenchWorkload {
    /// The namespace the resources are created in.
    pub namespace: &'static str,
    /// Objects (YAML) created in that namespace first: the Secrets the resources reference.
    pub setup: &'static [&'static str],
    /// The i-th resource, as JSON.
    pub resource: fn(usize) -> Value,
    /// The spec change whose effect on a child is timed.
    pub change: SpecChange,
    /// The baseline its figures are compared with; `None` benches the operator alone.
    pub naive: Option<NaiveBaseline>,
    /// Writes strictly needed to converge one resource, and what they are.
    pub lower_bound_converge: (f64, &'static str),
    /// Writes strictly needed for the spec change, and what they are.
    pub lower_bound_change: (f64, &'static str),
}

/// A spec change to a scaling bound, and the child it shows in.
#[derive(Clone, Copy, Debug)]
pub struct SpecChange {
    /// The change to `target`, as a merge patch.
    pub patch: fn(i64) -> Value,
    /// The child of resource `name` the change shows in.
    pub child: fn(&str) -> ChildRef,
    /// Whether that child (as JSON) shows `target`.
    pub shown: fn(&Value, i64) -> bool,
    /// The first target; later samples use targets above it.
    pub first_target: i64,
}

impl SpecChange {
    /// `spec.replicas`, shown in the Deployment named after the resource.
    pub const REPLICAS: Self = Self {
        patch: |replicas| serde_json::json!({"spec": {"replicas": replicas}}),
        child: |name| ChildRef {
            api_version: "apps/v1",
            plural: "deployments",
            name: name.to_string(),
        },
        shown: |deployment, replicas| deployment["spec"]["replicas"].as_i64() == Some(replicas),
        first_target: 3,
    };
}

/// How the benchmark's naive baseline reconciles one resource: on every pass it reads the
/// child it observes, builds every child and the status with the operator's own builders,
/// and replaces them all (a GET, then a PUT or a POST, each), as many hand-written operators
/// do. The operator states only this; `cargo xtask bench` runs it.
#[derive(Clone, Copy, Debug)]
pub struct NaiveBaseline {
    /// The child it watches and reads on every pass (its Deployment, its CronJob).
    pub observes: ObservedChild,
    /// The children (in apply order) and the status of a resource, all as JSON, given the
    /// observed child when it exists.
    pub pass: fn(&Value, Option<&Value>) -> Result<NaivePass, String>,
}

/// The child a naive baseline reads: its kind, and its name for a resource's name.
#[derive(Clone, Copy, Debug)]
pub struct ObservedChild {
    /// `apps/v1`.
    pub api_version: &'static str,
    /// `Deployment`.
    pub kind: &'static str,
    pub name: fn(&str) -> String,
}

impl ObservedChild {
    /// The Deployment named after the resource.
    pub const DEPLOYMENT: Self = Self {
        api_version: "apps/v1",
        kind: "Deployment",
        name: |name| name.to_string(),
    };
}

/// What one naive pass writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NaivePass {
    pub children: Vec<Value>,
    pub status: Value,
}

impl NaivePass {
    /// A pass writing `children` (any serializable objects) and `status`.
    pub fn of<S: serde::Serialize>(
        children: impl IntoIterator<Item = Result<Value, serde_json::Error>>,
        status: &S,
    ) -> Result<Self, String> {
        let to_text = |e: serde_json::Error| e.to_string();
        Ok(Self {
            children: children
                .into_iter()
                .collect::<Result<_, _>>()
                .map_err(to_text)?,
            status: serde_json::to_value(status).map_err(to_text)?,
        })
    }
}

/// Whether a status (as JSON) has `Ready=True`.
pub fn is_ready(obj: &Value) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}
