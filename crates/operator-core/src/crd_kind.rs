//! A custom resource kind as its Rust type declares it. Group, version, kind, plural and
//! short name are said once, in the type's `#[operator_core::custom_resource(…)]`; what serves,
//! admits, benches or tests the kind reads them from here, so they cannot drift apart.

use kube::CustomResourceExt;
use kube::core::ApiResource;

#[derive(Clone, Copy)]
pub struct CrdKind {
    resource: fn() -> ApiResource,
    short_names: fn() -> &'static [&'static str],
}

impl CrdKind {
    /// The kind of the custom resource type `K`.
    pub const fn of<K: CustomResourceExt>() -> Self {
        Self {
            resource: K::api_resource,
            short_names: K::shortnames,
        }
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
