//! What the orchestrator depends on: the PaymentServices its steps call and, for postgresql,
//! the CloudNativePG `Cluster` that keeps its instances. Both are other owners' resources: the
//! operator reads them (through the views below, which hold only metadata and status, and
//! never write them) and watches them, so `DependenciesReady` moves when they do. A missing
//! or unready dependency is visible, never a reason not to deploy.

use std::borrow::Cow;
use std::collections::BTreeSet;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crd::{PersistenceType, SagaOrchestrator};

/// Declares a read-only view of another operator's namespaced resource: its metadata and
/// status, as JSON.
macro_rules! foreign_view {
    ($(#[$doc:meta])* $name:ident, $group:literal, $version:literal, $kind:literal, $plural:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, Deserialize, Serialize)]
        pub struct $name {
            pub metadata: ObjectMeta,
            #[serde(default)]
            pub status: Value,
        }

        impl Resource for $name {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                $group.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                $version.into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

foreign_view!(
    /// A PaymentService (`payments.io/v2`, its stored version: read without conversion), as
    /// the payment-service operator reports it.
    PaymentServiceView, "payments.io", "v2", "PaymentService", "paymentservices"
);
foreign_view!(
    /// A CloudNativePG `Cluster` (`postgresql.cnpg.io/v1`).
    PostgresClusterView, "postgresql.cnpg.io", "v1", "Cluster", "clusters"
);

/// Whether a PaymentService says it is Ready.
pub fn service_ready(ps: &PaymentServiceView) -> bool {
    operator_core::conditions::reports_ready(&ps.status)
}

/// Whether a CloudNativePG cluster has every instance ready.
pub fn cluster_ready(cluster: &PostgresClusterView) -> bool {
    let instances = cluster.status["instances"].as_i64();
    let ready = cluster.status["readyInstances"].as_i64();
    matches!((instances, ready), (Some(i), Some(r)) if i > 0 && r >= i)
}

/// What one pass found of the dependencies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dependencies {
    pub missing_services: Vec<String>,
    pub unready_services: Vec<String>,
    /// The persistence cluster, when it can be checked (postgresql, CloudNativePG installed):
    /// `Some(Ok(()))` ready, `Some(Err(why))` not.
    pub persistence: Option<Result<(), String>>,
}

impl Dependencies {
    pub fn ready(&self) -> bool {
        self.missing_services.is_empty()
            && self.unready_services.is_empty()
            && !matches!(self.persistence, Some(Err(_)))
    }

    /// What is not ready, in words (empty when all is).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.missing_services.is_empty() {
            out.push(format!(
                "PaymentService(s) not found: {} (a step calls each; create them or fix the step's service)",
                self.missing_services.join(", ")
            ));
        }
        if !self.unready_services.is_empty() {
            out.push(format!(
                "PaymentService(s) not Ready: {}",
                self.unready_services.join(", ")
            ));
        }
        if let Some(Err(why)) = &self.persistence {
            out.push(why.clone());
        }
        out
    }
}

/// The orchestrators in `namespace` that a change to the PaymentService `service` concerns:
/// those with a step calling it.
pub fn callers_of<'a>(
    orchestrators: impl IntoIterator<Item = &'a SagaOrchestrator>,
    namespace: &str,
    service: &str,
) -> Vec<ObjectRef<SagaOrchestrator>> {
    orchestrators
        .into_iter()
        .filter(|so| so.metadata.namespace.as_deref() == Some(namespace))
        .filter(|so| so.spec.services().contains(service))
        .map(ObjectRef::from_obj)
        .collect()
}

/// The orchestrators in `namespace` whose persistence is the postgresql cluster `cluster`.
pub fn users_of<'a>(
    orchestrators: impl IntoIterator<Item = &'a SagaOrchestrator>,
    namespace: &str,
    cluster: &str,
) -> Vec<ObjectRef<SagaOrchestrator>> {
    orchestrators
        .into_iter()
        .filter(|so| so.metadata.namespace.as_deref() == Some(namespace))
        .filter(|so| {
            so.spec.persistence.type_ == PersistenceType::Postgresql
                && so.spec.persistence.cluster_name == cluster
        })
        .map(ObjectRef::from_obj)
        .collect()
}

/// Sorts the services a spec names by what was found of them.
pub fn evaluate<'a>(
    names: BTreeSet<&str>,
    found: impl Fn(&str) -> Option<&'a PaymentServiceView>,
    persistence: Option<Result<(), String>>,
) -> Dependencies {
    let mut deps = Dependencies {
        persistence,
        ..Dependencies::default()
    };
    for name in names {
        match found(name) {
            None => deps.missing_services.push(name.to_string()),
            Some(ps) if !service_ready(ps) => deps.unready_services.push(name.to_string()),
            Some(_) => {}
        }
    }
    deps
}
