//! One operator as the project's tooling sees it. Each operator crate exports one
//! [`OperatorDescriptor`] (`payment_service::OPERATOR`); its `main` runs it, and
//! `cargo xtask crds`, `demo`, `bench` and the e2e suite iterate the one list of them in
//! `xtask`, so a new operator is wired into all of them by adding it there.

use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

pub use crate::crd_kind::{Converged, ServedResource};
use crate::metrics::{Metrics, RestClientLayer};
use crate::runtime::config::RuntimeConfig;
use crate::runtime::{OperatorBinary, Runtime, RuntimeError, run, shutdown_signal, telemetry};
use crate::tooling::BenchWorkload;
use tokio::sync::watch;

/// An operator: what it is called, what it serves, how it runs, how it is exercised.
#[derive(Clone, Copy)]
pub struct OperatorDescriptor {
    /// The binary: its identity (the binary's name is its field manager), config section
    /// and version.
    pub binary: OperatorBinary,
    /// The custom resources it serves.
    pub resources: &'static [ServedResource],
    /// What its admission webhooks admit: a validating and a mutating webhook per kind.
    pub admission: &'static [crate::admission::Admitted],
    /// Its controllers, as the binary runs them.
    pub controllers: fn(&Runtime) -> Vec<BoxFuture<'static, ()>>,
    /// Registers its domain series (what its alerts may read) on a registry.
    pub metrics: fn(&Metrics),
    /// The rows of its Grafana dashboard after the controller rows every operator has
    /// ([`crate::dashboard::CONTROLLER_ROWS`]): what its domain series show.
    pub dashboard: &'static [crate::dashboard::Row],
    /// Its section of the config file in `cargo xtask demo` (YAML, empty for none): what
    /// the in-memory demo cannot do (reach a sample's partners) is switched off here.
    pub demo_settings: &'static str,
    /// The load `cargo xtask bench` puts on it.
    pub bench: BenchWorkload,
}

/// Declares an operator crate's `BINARY` (`binary: (field manager, config section, the type
/// of its own fields there)`; see [`crate::operator_binary!`]), `IDENTITY` and `OPERATOR`. The rest of
/// the descriptor comes from the crate's layout, the same in every operator:
/// `metrics::DASHBOARD`, `admission::ADMISSION` and `bench::WORKLOAD`; `metrics` names the
/// type in `metrics.rs` whose `register` adds the domain series.
#[macro_export]
macro_rules! operator {
    (
        binary: ($manager:literal, $section:literal, $settings:expr $(,)?),
        resources: $resources:expr,
        controllers: $controllers:expr,
        metrics: $metrics:ty
        $(, demo_settings: $demo:literal)? $(,)?
    ) => {
        /// The binary: its field manager (also `app.kubernetes.io/managed-by` and the event
        /// reporter), its section of the config file, and the type of its own fields there.
        pub const BINARY: $crate::runtime::OperatorBinary =
            $crate::operator_binary!($manager, $section, $settings);

        /// Who the operator is to the API server.
        pub const IDENTITY: $crate::OperatorIdentity = BINARY.identity;

        /// The operator, as its binary and the project's tooling run it.
        pub const OPERATOR: $crate::OperatorDescriptor = $crate::OperatorDescriptor {
            binary: BINARY,
            resources: $resources,
            controllers: $controllers,
            metrics: |registry| _ = <$metrics>::register(registry),
            dashboard: metrics::DASHBOARD,
            admission: admission::ADMISSION,
            demo_settings: $crate::operator!(@demo $($demo)?),
            bench: bench::WORKLOAD,
        };
    };
    (@demo) => { "" };
    (@demo $demo:literal) => { $demo };
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
        let metrics = Metrics::new();
        let kubeconfig = kube::Config::infer()
            .await
            .map_err(|e| RuntimeError::ClientConfig(e.to_string()))?;
        let requests = RestClientLayer::new(&metrics, &kubeconfig.cluster_url);
        let client = kube::client::ClientBuilder::try_from(kubeconfig)
            .map_err(|e| RuntimeError::ClientConfig(e.to_string()))?
            .with_layer(&requests)
            .build();
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested");
            stop_tx.send_replace(true);
        });
        let (controllers, admitted, served) = (self.controllers, self.admission, self.resources);
        run(client, config, metrics, stop_rx, move |runtime| {
            let mut services = controllers(runtime);
            services.extend(runtime.admission_webhooks(admitted, served));
            services
        })
        .await
    }

    /// The cargo package (its crate's name, also `app.kubernetes.io/name`); also its
    /// kustomize overlay, `deploy/<package>`.
    pub const fn package(&self) -> &'static str {
        self.binary.identity.app_name
    }

    /// Its CRDs, one per kind it serves.
    pub fn crds(&self) -> Vec<CustomResourceDefinition> {
        self.resources.iter().map(|r| r.resource.crd()).collect()
    }

    /// The binary's file name (also its field manager and event reporter).
    pub fn binary_name(&self) -> &'static str {
        self.binary.identity.manager
    }
}

impl std::fmt::Debug for OperatorDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorDescriptor")
            .field("package", &self.package())
            .field("binary", &self.binary_name())
            .finish_non_exhaustive()
    }
}
