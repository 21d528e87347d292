//! A custom resource kind as its Rust type declares it. Group, version, kind, plural and
//! short name are said once, in the type's `#[operator_core::custom_resource(…)]`; what serves,
//! admits, benches or tests the kind reads them from here, so they cannot drift apart.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::core::ApiResource;
use serde_json::Value;

#[derive(Clone, Copy)]
pub struct CrdKind {
    resource: fn() -> ApiResource,
    short_names: fn() -> &'static [&'static str],
    crd: fn() -> CustomResourceDefinition,
}

impl CrdKind {
    /// The kind of the custom resource type `K`.
    pub const fn of<K: CustomResourceExt>() -> Self {
        Self {
            resource: K::api_resource,
            short_names: K::shortnames,
            crd: K::crd,
        }
    }

    /// Its CRD: the derive's, or what [`ServedResource::in_versions`] put in its place.
    pub fn crd(&self) -> CustomResourceDefinition {
        (self.crd)()
    }

    /// Group, version, `apiVersion`, kind and plural.
    pub fn resource(&self) -> ApiResource {
        (self.resource)()
    }

    /// `payments.io`.
    pub fn group(&self) -> String {
        self.resource().group
    }

    /// `v1`.
    pub fn version(&self) -> String {
        self.resource().version
    }

    /// `payments.io/v1`.
    pub fn api_version(&self) -> String {
        self.resource().api_version
    }

    /// `PaymentService`.
    pub fn kind(&self) -> String {
        self.resource().kind
    }

    /// `paymentservices`.
    pub fn plural(&self) -> String {
        self.resource().plural
    }

    /// `paymentservices.payments.io`, its CRD's name.
    pub fn crd_name(&self) -> String {
        let resource = self.resource();
        format!("{}.{}", resource.plural, resource.group)
    }

    /// `ps`, as in `kubectl get ps` (the plural where the kind has none).
    pub fn short_name(&self) -> String {
        (self.short_names)()
            .first()
            .map_or_else(|| self.plural(), |s| (*s).to_string())
    }
}

impl std::fmt::Debug for CrdKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let resource = self.resource();
        write!(f, "{} {}", resource.api_version, resource.kind)
    }
}

/// Converts one whole object into the `apiVersion` given; the error says why it cannot be.
pub type Convert = fn(Value, &str) -> Result<Value, String>;

/// A custom resource an operator serves: its kind, what "converged" means for one object of
/// it, and, where its CRD serves several versions, how the conversion webhook converts
/// between them.
#[derive(Clone, Copy, Debug)]
pub struct ServedResource {
    /// The kind, as its type declares it.
    pub resource: CrdKind,
    /// When an object of it has converged: its status says it runs as specified.
    pub converged: Converged,
    /// The conversion between its versions, on the webhook's `/convert`.
    pub convert: Option<Convert>,
}

impl ServedResource {
    /// The custom resource type `K`, converged when `converged` says so.
    pub const fn of<K: CustomResourceExt>(converged: Converged) -> Self {
        Self {
            resource: CrdKind::of::<K>(),
            converged,
            convert: None,
        }
    }

    /// Served in several versions: `crd` writes the CRD (the derive's has one version), and
    /// `convert` converts between them.
    pub const fn in_versions(
        mut self,
        crd: fn() -> CustomResourceDefinition,
        convert: Convert,
    ) -> Self {
        self.resource.crd = crd;
        self.convert = Some(convert);
        self
    }
}

/// What "converged" means for an object of a served kind, read from its status as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Converged {
    /// Its `Ready` condition is `True`.
    Ready,
    /// Its `Ready` condition is `True` and its `phase` is this one.
    ReadyIn(&'static str),
}

impl Converged {
    /// Whether `obj` (as JSON) has converged.
    pub fn check(self, obj: &Value) -> bool {
        let ready = crate::conditions::reports_ready(&obj["status"]);
        match self {
            Self::Ready => ready,
            Self::ReadyIn(phase) => ready && obj["status"]["phase"] == phase,
        }
    }
}
