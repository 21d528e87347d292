//! What the project's tooling (not the operator's binary) needs of an operator: the load
//! `cargo xtask bench` puts on it, and the naive baseline its figures are compared with.

use crate::crd_kind::CrdKind;
use serde_json::Value;

/// A child object, by API and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildRef {
    pub api_version: &'static str,
    pub plural: &'static str,
    pub name: String,
}

impl ChildRef {
    pub fn new(api_version: &'static str, plural: &'static str, name: impl Into<String>) -> Self {
        Self {
            api_version,
            plural,
            name: name.into(),
        }
    }
}

/// N resources of the operator's first [`ServedResource`] and one spec change whose effect
/// on a child is timed.
#[derive(Clone, Copy, Debug)]
pub struct BenchWorkload {
    /// The namespace the resources are created in.
    pub namespace: &'static str,
    /// Objects (YAML) created in that namespace first: the Secrets the resources reference.
    pub setup: &'static [&'static str],
    /// The spec of every resource, as JSON.
    pub spec: fn() -> Value,
    /// The spec change whose effect on a child is timed.
    pub change: SpecChange,
    /// The baseline its figures are compared with; `None` benches the operator alone.
    pub naive: Option<NaiveBaseline>,
    /// Writes strictly needed to converge one resource, and what they are.
    pub lower_bound_converge: (f64, &'static str),
}

impl BenchWorkload {
    /// The i-th resource of `kind`: named `<short name>-<i>` (`ps-0042`), in the namespace,
    /// with the spec.
    pub fn resource(&self, kind: &CrdKind, i: usize) -> Value {
        let resource = kind.resource();
        serde_json::json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": format!("{}-{i:04}", kind.short_name()), "namespace": self.namespace},
            "spec": (self.spec)(),
        })
    }
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
    /// Writes strictly needed for the change, and what they are.
    pub lower_bound: (f64, &'static str),
}

impl SpecChange {
    /// `spec.replicas`, shown in the Deployment named after the resource.
    pub const REPLICAS: Self = Self {
        patch: |replicas| serde_json::json!({"spec": {"replicas": replicas}}),
        child: |name| ChildRef::new("apps/v1", "deployments", name),
        shown: |deployment, replicas| deployment["spec"]["replicas"].as_i64() == Some(replicas),
        first_target: 3,
        lower_bound: (2.0, "the Deployment, the status"),
    };
}

/// How the benchmark's naive baseline reconciles one resource: on every pass it reads the
/// child it observes, builds every child and the status with the operator's own builders,
/// and replaces them all (a GET, then a PUT or a POST, each), as many hand-written operators
/// do. The operator states only its kind's [`NaiveReconcile`]; `cargo xtask bench` runs it.
#[derive(Clone, Copy, Debug)]
pub struct NaiveBaseline {
    /// The child it watches and reads on every pass (its Deployment, its CronJob).
    pub observes: ObservedChild,
    /// The children (in apply order) and the status of a resource, all as JSON, given the
    /// observed child when it exists.
    pub pass: fn(&Value, Option<&Value>) -> Result<NaivePass, String>,
}

impl NaiveBaseline {
    /// The baseline of kind `K`, decoding the resource and the child it reads for its pass.
    pub const fn of<K: NaiveReconcile>() -> Self {
        Self {
            observes: ObservedChild {
                api_version: <K::Observed as k8s_openapi::Resource>::API_VERSION,
                kind: <K::Observed as k8s_openapi::Resource>::KIND,
                name: K::observed_name,
            },
            pass: decoded_pass::<K>,
        }
    }
}

/// A kind's naive reconcile, typed: what [`NaiveBaseline::of`] runs on every pass.
pub trait NaiveReconcile: serde::de::DeserializeOwned {
    /// The child read on every pass (its Deployment, its CronJob).
    type Observed: k8s_openapi::Resource + serde::de::DeserializeOwned;

    /// The observed child's name for the resource's name: the same unless overridden.
    fn observed_name(name: &str) -> String {
        name.to_string()
    }

    /// Every child (in apply order) and the status, given the observed child if it exists.
    fn naive_pass(&self, observed: Option<Self::Observed>) -> Result<NaivePass, String>;
}

fn decoded_pass<K: NaiveReconcile>(
    resource: &Value,
    observed: Option<&Value>,
) -> Result<NaivePass, String> {
    let decode = |e: serde_json::Error| e.to_string();
    let resource: K = serde_json::from_value(resource.clone()).map_err(decode)?;
    let observed = observed
        .map(|o| serde_json::from_value(o.clone()))
        .transpose()
        .map_err(decode)?;
    resource.naive_pass(observed)
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
