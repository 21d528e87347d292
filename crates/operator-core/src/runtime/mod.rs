//! How every operator binary runs in production: flags and config, JSON logs and OTLP
//! traces, the admin endpoints, leader election, and shutdown. An operator's `main` is a
//! few lines:
//!
//! ```no_run
//! # #![allow(non_snake_case)]
//! # async fn run(OPERATOR: operator_core::OperatorDescriptor) -> anyhow::Result<()> {
//! // `OPERATOR`, the operator crate's descriptor, names its binary, CRDs and controllers.
//! OPERATOR.main().await?;
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod config;
pub mod leader;
pub mod metrics_access;
pub mod own_image;
pub mod telemetry;
pub mod versions;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use kube::Resource;
use kube::core::NamespaceResourceScope;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

use crate::apply::{ChildKinds, ChildKindsBuilder, ChildWatches, OperatorIdentity, WatchedKind};
use crate::controller::{Context, OperatorController};
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::serving::{self, stopped};
use config::{Flags, RuntimeConfig};
use leader::LeaderElector;

/// How long in-flight reconciles may run after SIGTERM before they are cancelled.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
/// How long the API server may take to answer the first request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Who an operator binary is.
#[derive(Clone, Copy, Debug)]
pub struct OperatorBinary {
    pub identity: OperatorIdentity,
    /// The operator's section in the config file (seed 002: `trading`).
    pub config_section: &'static str,
    /// The type of the operator's own fields in that section.
    pub settings: config::OperatorSettings,
    /// The operator crate's version (`env!("CARGO_PKG_VERSION")` there), for `--version`.
    pub version: &'static str,
}

/// The [`OperatorBinary`] of the operator crate it is written in: `manager` is its field
/// manager (also the binary's name and event reporter), the crate's name its
/// `app.kubernetes.io/name` and package, `section` its section of the config file and
/// `settings` the type of its own fields there; the crate's version answers `--version`.
#[macro_export]
macro_rules! operator_binary {
    ($manager:literal, $section:literal, $settings:expr $(,)?) => {
        $crate::runtime::OperatorBinary {
            identity: $crate::OperatorIdentity {
                manager: $manager,
                app_name: env!("CARGO_PKG_NAME"),
            },
            config_section: $section,
            settings: $settings,
            version: env!("CARGO_PKG_VERSION"),
        }
    };
}

impl OperatorBinary {
    /// The flags of this binary: `--help` and `--version` name it, not operator-core.
    pub fn parse_flags(&self) -> Flags {
        use clap::{CommandFactory, FromArgMatches};
        let command = Flags::command()
            .name(self.identity.manager)
            .bin_name(self.identity.manager)
            .version(self.version);
        let matches = command.get_matches();
        Flags::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    #[error("no Kubernetes client configuration (KUBECONFIG, ~/.kube/config or in-cluster): {0}")]
    ClientConfig(String),
    #[error("the API server did not answer: {0}")]
    Unreachable(String),
    #[error("{0}")]
    UntestedServer(String),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    LostLease(#[from] leader::LeaseError),
    #[error("the leader election task failed: {0}")]
    ElectionFailed(String),
}

/// What the controllers of a running operator are built from.
#[derive(Clone)]
pub struct Runtime {
    client: kube::Client,
    config: RuntimeConfig,
    metrics: Metrics,
    readiness: Readiness,
    stop: watch::Receiver<bool>,
    /// Whether this replica leads; controllers reconcile only while it does.
    leading: watch::Receiver<bool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The Prometheus the config names (`operator.prometheus`), to query; none when unset.
    pub fn prometheus(&self) -> Option<Arc<dyn crate::prometheus::MetricsQuery>> {
        let settings = self.config().prometheus.clone()?;
        Some(Arc::new(crate::prometheus::Prometheus::new(settings)))
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether this replica leads (always, without leader election). Work that only the
    /// leader may do waits for it; services every replica runs (an admission webhook) do not.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Resolves when the process is asked to stop (SIGTERM): a service's cue to drain.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        stopped(self.stop.clone())
    }

    /// The namespace to watch (`WATCH_NAMESPACE`), or `None` for all.
    pub fn namespace(&self) -> Option<&str> {
        self.config.controller.namespace.as_deref()
    }

    /// The API of kind `K` where the operator watches: its namespace, or every namespace.
    pub fn watched_api<K>(&self) -> kube::Api<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        match self.namespace() {
            Some(ns) => kube::Api::namespaced(self.client(), ns),
            None => kube::Api::all(self.client()),
        }
    }

    /// The admission webhooks for `admitted` and the conversion webhook for those of `served`
    /// that serve several versions, over TLS on every replica (leader or not) until shutdown;
    /// `None` when the webhooks are off or there is nothing to serve. A failure to listen is
    /// reported on `/readyz`.
    pub fn admission_webhooks(
        &self,
        admitted: &'static [crate::admission::Admitted],
        served: &'static [crate::crd_kind::ServedResource],
    ) -> Option<BoxFuture<'static, ()>> {
        let webhook = self
            .config
            .webhook
            .clone()
            .filter(|_| !admitted.is_empty() || served.iter().any(|s| s.convert.is_some()))?;
        use crate::admission::{CertificateKeeper, ServingCertificate, WebhookServer};
        let (certificate, keeper) = match webhook.certificate {
            config::WebhookCertificate::Files(dir) => (ServingCertificate::in_dir(dir), None),
            config::WebhookCertificate::SelfManaged(own) => {
                let converted = served
                    .iter()
                    .filter(|s| s.convert.is_some())
                    .map(|s| s.resource.crd_name())
                    .collect();
                let keeper = CertificateKeeper::new(self.client(), own, converted);
                (ServingCertificate::issued_by_operator(), Some(keeper))
            }
        };
        let mut server = WebhookServer::new(admitted, self.client(), certificate)
            .converting(served)
            .recording(crate::admission::WebhookMetrics::register(&self.metrics));
        if let Some(keeper) = keeper {
            server = server.keeping(keeper, self.leading());
        }
        let (readiness, stop) = (self.readiness.clone(), self.stop.clone());
        Some(Box::pin(async move {
            if let Err(error) = server.run(webhook.address, readiness, stop).await {
                tracing::error!(%error, "admission webhooks stopped");
            }
        }))
    }

    /// A reconcile context wired to this runtime's client, settings and metrics.
    pub fn context<O>(&self, identity: OperatorIdentity, operator: O) -> Context<O> {
        Context::new(
            self.client(),
            identity,
            self.config.controller.clone(),
            operator,
        )
        .with_metrics(self.metrics.clone())
        .with_clock(self.config.clock.clone())
        .with_workloads(self.config.workloads.clone())
    }

    /// A controller that stops taking work on shutdown and reports its cache sync to `/readyz`.
    pub fn controller<K, O>(&self, ctx: Context<O>) -> OperatorController<K, O>
    where
        K: WatchedKind,
        O: Send + Sync + 'static,
    {
        OperatorController::new(ctx)
            .report_readiness(self.readiness.clone())
            .reconcile_while_leading(self.leading.clone())
            .shutdown_on(stopped(self.stop.clone()))
    }

    /// The operator's child kinds, to declare: written as `identity`, watched where the
    /// operator watches.
    pub fn child_kinds(&self, identity: OperatorIdentity) -> ChildKindsBuilder {
        ChildKinds::builder(self.client(), identity, self.namespace())
    }

    /// The controller of `K` as every operator runs it: its context carries the operator's
    /// own part, and it owns the declared child kinds (reconciling an owner when a child of
    /// it changes).
    pub fn operator_controller<K, O>(
        &self,
        identity: OperatorIdentity,
        operator: O,
        (children, watches): (ChildKinds, ChildWatches),
    ) -> OperatorController<K, O>
    where
        K: WatchedKind,
        O: Send + Sync + 'static,
    {
        let ctx = self.context(identity, operator).with_children(children);
        self.controller(ctx).owns_children(watches)
    }

    /// A cache of the objects of kind `K` that `selection` picks where the operator watches,
    /// each trimmed by `compact` to what the operator reads, and the stream of objects it
    /// touched (for `watches_stream`).
    pub fn cached<K>(
        &self,
        selection: watcher::Config,
        compact: impl FnMut(&mut K) + Send + 'static,
    ) -> (Store<K>, BoxStream<'static, Result<K, watcher::Error>>)
    where
        K: WatchedKind,
    {
        let (store, writer) = reflector::store();
        let stream = watcher(self.watched_api::<K>(), selection)
            .default_backoff()
            .modify(compact)
            .reflect(writer)
            .touched_objects()
            .boxed();
        (store, stream)
    }
}

/// Background tasks of one `run`, aborted if `run` itself is dropped (as when a test
/// simulates a crash), so nothing outlives it.
struct Tasks(Vec<tokio::task::AbortHandle>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// A runtime [`spawn`]ed in the background: send `true` to stop it as SIGTERM would, await
/// the task for its result, or abort the task to crash it mid-flight.
pub type Background = (
    watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), RuntimeError>>,
);

/// [`run`] on a task of its own (tests, tools, and operators embedded in another process).
pub fn spawn<B>(
    client: kube::Client,
    config: RuntimeConfig,
    metrics: Metrics,
    build: B,
) -> Background
where
    B: FnOnce(&Runtime) -> Vec<BoxFuture<'static, ()>> + Send + 'static,
{
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run(client, config, metrics, stop_rx, build));
    (stop, task)
}

/// [`main`] after flags, config and telemetry: everything that runs, with the client and
/// the stop signal given (tests run two of these against one testkit server).
pub async fn run<B>(
    client: kube::Client,
    config: RuntimeConfig,
    metrics: Metrics,
    stop: watch::Receiver<bool>,
    build: B,
) -> Result<(), RuntimeError>
where
    B: FnOnce(&Runtime) -> Vec<BoxFuture<'static, ()>>,
{
    tracing::info!(
        watch_namespace = config.controller.namespace.as_deref().unwrap_or("<all>"),
        resync = ?config.controller.resync,
        leader_election = config.leader_election.is_some(),
        "operator starting"
    );
    let readiness = Readiness::default();
    let mut tasks = serve_admin_endpoints(&client, &config, &readiness, &metrics, &stop).await?;
    connect(&client).await?;
    readiness.set_connected();

    // Leadership, as the campaign publishes it; `release` tells the campaign to give the
    // lease up, which happens only once reconciling has stopped.
    let (leading_tx, mut leadership) = watch::channel(None);
    let (release, release_rx) = watch::channel(false);
    let election = config.leader_election.clone().map(|election| {
        tracing::info!(lease = %election.lease_name, namespace = %election.namespace, identity = %election.identity, "campaigning for leadership");
        tokio::spawn(LeaderElector::new(client.clone(), election).campaign(leading_tx, metrics.clone(), release_rx))
    });
    if let Some(task) = &election {
        tasks.0.push(task.abort_handle());
    }

    // Everything `build` returns runs on every replica from the start: the controllers keep
    // their caches warm while standing by (a failover then relists nothing) but reconcile
    // only once `reconciling` says this replica leads; other services (an admission
    // webhook) serve on every replica.
    let (reconciling, leading) = watch::channel(false);
    let runtime = Runtime {
        client,
        config,
        metrics,
        readiness: readiness.clone(),
        stop: stop.clone(),
        leading,
    };
    let mut controllers = std::pin::pin!(futures::future::join_all(build(&runtime)));
    let lead = match &election {
        None => true,
        Some(_) => tokio::select! {
            led = leadership.wait_for(Option::is_some) => led.is_ok(),
            () = stopped(stop.clone()) => false,
            _ = &mut controllers => false,
        },
    };
    let lost_lease = if lead {
        readiness.set_leading(true);
        reconciling.send_replace(true);
        let lost_leadership = async {
            match &election {
                Some(_) => leader::lost(&mut leadership).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut controllers => false,
            // Leadership ended (lost, expired, or the election task is gone): the controllers
            // are dropped here and every reconcile in flight is cancelled.
            () = lost_leadership => true,
            () = shutdown_grace(stop.clone()) => {
                tracing::warn!("reconciles still running after the shutdown grace period; cancelled");
                false
            }
        }
    } else {
        // Stopped while standing by: nothing reconciles; let the watches wind down.
        tokio::select! {
            _ = &mut controllers => {}
            () = shutdown_grace(stop.clone()) => {}
        }
        false
    };
    if lost_lease {
        tracing::error!("leadership lost: reconciling stopped");
    }
    reconciling.send_replace(false);
    readiness.set_leading(false);
    release.send_replace(true);
    let lease = runtime
        .config
        .leader_election
        .as_ref()
        .map(|e| e.lease_name.clone());
    match (finish_election(election).await, lease) {
        // However the campaign ended, a lost leadership is an error: the process must restart
        // as a standby.
        (Ok(()), Some(lease)) if lost_lease => Err(leader::LeaseError::Lost(lease).into()),
        (result, _) => result,
    }
}

/// Serves health, readiness and metrics (with TLS and token review when `metricsSecure` is
/// on) until `stop`; the tasks stop when dropped.
async fn serve_admin_endpoints(
    client: &kube::Client,
    config: &RuntimeConfig,
    readiness: &Readiness,
    metrics: &Metrics,
    stop: &watch::Receiver<bool>,
) -> Result<Tasks, RuntimeError> {
    // Dropped on an error: what already serves stops.
    let mut tasks = Tasks(Vec::new());
    let secured = config
        .metrics_secure
        .then(|| metrics_access::MetricsAccess::new(client.clone()));
    for endpoint in admin::endpoints(
        config.health_address,
        config.metrics_address,
        readiness.clone(),
        metrics.clone(),
        secured,
    ) {
        let address = endpoint.address;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| RuntimeError::Bind { address, source })?;
        let bound = listener.local_addr().unwrap_or(address);
        let serves = endpoint.serves;
        tracing::info!(address = %bound, serves, secure = endpoint.secure, "admin endpoints listening");
        let served = if endpoint.secure {
            let tls = metrics_access::serving_certificate()
                .and_then(|c| c.server_config().map_err(|e| e.to_string()))
                .map_err(|why| RuntimeError::Bind {
                    address,
                    source: std::io::Error::other(format!("the metrics certificate: {why}")),
                })?;
            let tls = tokio_rustls::TlsAcceptor::from(tls);
            tokio::spawn(serving::serve_upgraded(
                listener,
                endpoint.router,
                stop.clone(),
                move |stream| {
                    let tls = tls.clone();
                    async move { tls.accept(stream).await.ok() }
                },
            ))
        } else {
            tokio::spawn(serving::serve(listener, endpoint.router, stop.clone()))
        };
        tasks.0.push(served.abort_handle());
    }
    Ok(tasks)
}

/// Asks the API server its version, within CONNECT_TIMEOUT: refuses a version the
/// operator was not tested on, warns on a newer one.
async fn connect(client: &kube::Client) -> Result<(), RuntimeError> {
    let server = tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version())
        .await
        .map_err(|_| RuntimeError::Unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| RuntimeError::Unreachable(e.to_string()))?;
    match versions::check(&server).map_err(RuntimeError::UntestedServer)? {
        versions::ServerVersion::Tested => {
            tracing::info!(version = %server.git_version, "connected to the API server");
        }
        versions::ServerVersion::Newer(warning) => tracing::warn!("{warning}"),
    }
    Ok(())
}

/// On SIGTERM the controllers stop taking work and let reconciles in flight finish, for
/// SHUTDOWN_GRACE at most; only then is the lease released.
async fn shutdown_grace(stop: watch::Receiver<bool>) {
    stopped(stop).await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}

async fn finish_election(
    election: Option<tokio::task::JoinHandle<Result<(), leader::LeaseError>>>,
) -> Result<(), RuntimeError> {
    match election {
        Some(task) => match task.await {
            Ok(result) => result.map_err(RuntimeError::from),
            Err(join) => {
                tracing::error!(error = %join, "leader election task failed");
                Err(RuntimeError::ElectionFailed(join.to_string()))
            }
        },
        None => Ok(()),
    }
}
