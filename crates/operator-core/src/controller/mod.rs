//! One builder that wires `kube::runtime::Controller` the same way for every operator:
//! the custom resource, its owned children (watched as metadata), a periodic resync,
//! per-object exponential backoff with jitter on errors, bounded concurrency, and a
//! reconcile [`Context`].

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use rand::Rng;
use serde::de::DeserializeOwned;

use crate::annotations::{Notices, keep_annotation_writers};
use crate::apply::{ChildKinds, ChildWatches, OperatorIdentity, WatchedKind};
use crate::error::ReconcileError;
use crate::events::EventPublisher;
use crate::metrics::{Metrics, ReconcileResult, ResourceLabels};
use crate::readiness::Readiness;
use crate::status::StatusWrites;

mod steps;
mod worker;
pub use steps::{PassStart, SECRET_POLL};
pub use worker::Failure;

/// Retry delays after failed reconciles of one object: `base · 2^(failures−1)`, capped at
/// `max`, each multiplied by a random factor in `[1 − jitter, 1 + jitter]` so objects that
/// failed together do not retry together.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            max: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay after the `failures`-th consecutive failure (1-based), before jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1 << exponent).min(self.max)
    }

    fn jittered(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let factor = 1.0 + self.jitter * rng.random_range(-1.0..=1.0);
        self.delay(failures).mul_f64(factor.max(0.0)).min(self.max)
    }
}

/// How a controller runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ControllerSettings {
    /// Every object is reconciled again this long after its last success (seed 002's
    /// `reconcileInterval`), and after a spec error.
    pub resync: Duration,
    /// At most this many reconciles run at once.
    pub concurrency: u16,
    pub backoff: Backoff,
    /// Watch one namespace (`WATCH_NAMESPACE`), or all when `None`.
    pub namespace: Option<String>,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(30),
            concurrency: 8,
            backoff: Backoff::default(),
            namespace: None,
        }
    }
}

/// What every reconcile is handed: the client, the event publisher, who the operator is,
/// and the operator's own part (its configuration and child handles).
pub struct Context<O> {
    pub client: Client,
    pub events: EventPublisher,
    pub identity: OperatorIdentity,
    pub metrics: Metrics,
    pub operator: O,
    /// Status writes whose watch event may not have reached the cache yet.
    pub status_writes: StatusWrites,
    /// The child kinds the operator declared (see [`ChildKinds`]).
    pub children: ChildKinds,
    settings: ControllerSettings,
    /// Consecutive failures per object UID, behind backoff and the start/end events.
    failures: Mutex<HashMap<String, u32>>,
    /// Annotation warnings already given, per object.
    notices: Notices,
    /// The time the reconciles read (tests move it past pauses and deadlines).
    clock: crate::Clock,
    /// What the operator's config gives every workload it builds.
    workloads: crate::builder::WorkloadDefaults,
}

impl<O: Debug> Debug for Context<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("identity", &self.identity)
            .field("operator", &self.operator)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<O> Context<O> {
    /// The API of kind `C` in `owner`'s namespace: where its children live.
    pub fn api_beside<C, K>(&self, owner: &K) -> Api<C>
    where
        C: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
        K: Resource<Scope = NamespaceResourceScope>,
    {
        Api::namespaced(self.client.clone(), namespace_of(owner))
    }

    /// The child `name` of kind `C` beside `owner`, when `owner` controls it (see
    /// [`crate::apply::get_controlled`]). A kind declared
    /// [`observed`](crate::ChildKindsBuilder::observed) is answered from its cache once it has
    /// listed, trimmed as [`crate::apply::ObservedKind`] says: no request.
    pub async fn controlled<C, K>(&self, owner: &K, name: &str) -> Result<Option<C>, crate::Error>
    where
        C: WatchedKind,
        K: Resource,
    {
        let namespace = owner.meta().namespace.as_deref().unwrap_or_default();
        if let Some(cached) = self.children.cached::<C>(namespace, name) {
            return Ok(cached.filter(|c| crate::apply::controlled_by(c.meta(), owner)));
        }
        Ok(crate::apply::get_controlled(&self.client, owner, name).await?)
    }

    pub fn new(
        client: Client,
        identity: OperatorIdentity,
        settings: ControllerSettings,
        operator: O,
    ) -> Self {
        let instance = std::env::var("POD_NAME").ok().filter(|n| !n.is_empty());
        let (children, _) = ChildKinds::builder(client.clone(), identity, None).build();
        Self {
            events: EventPublisher::new(client.clone(), identity.manager, instance),
            client,
            identity,
            metrics: Metrics::new(),
            operator,
            status_writes: StatusWrites::default(),
            children,
            settings,
            failures: Mutex::default(),
            notices: Notices::default(),
            clock: crate::Clock::default(),
            workloads: crate::builder::WorkloadDefaults::default(),
        }
    }

    /// Builds workloads with `workloads` (the operator's config's defaults).
    #[must_use]
    pub fn with_workloads(mut self, workloads: crate::builder::WorkloadDefaults) -> Self {
        self.workloads = workloads;
        self
    }

    /// What the operator's config gives every workload: default image, resources, labels,
    /// the monitoring namespace.
    pub fn workloads(&self) -> &crate::builder::WorkloadDefaults {
        &self.workloads
    }

    /// Reads time from `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: crate::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Now, by the context's clock.
    pub fn now(&self) -> jiff::Timestamp {
        (self.clock)()
    }

    /// The child kinds the operator declared; their watches go to
    /// [`OperatorController::owns_children`].
    #[must_use]
    pub fn with_children(mut self, children: ChildKinds) -> Self {
        self.children = children;
        self
    }

    /// Drops every piece of per-object state whose object is gone: apply records (by owner
    /// UID), backoff counts, remembered status writes, notices, event series, per-resource
    /// series. `live` is the controller's cache: `(uid, namespace, name)` of every object
    /// that exists.
    pub fn sweep(&self, controller: &str, live: &[(String, String, String)]) {
        let uids: std::collections::HashSet<String> =
            live.iter().map(|(uid, _, _)| uid.clone()).collect();
        let names: std::collections::HashSet<(String, String)> = live
            .iter()
            .map(|(_, ns, name)| (ns.clone(), name.clone()))
            .collect();
        self.children.retain_owners(&uids);
        self.failures().retain(|uid, _| uids.contains(uid));
        self.status_writes.retain(&uids);
        self.notices.retain(&uids);
        self.events.retain(&uids);
        self.metrics.retain_resources(controller, &names);
    }

    /// How many per-object records this process holds (apply records, backoff counts,
    /// remembered status writes, notices, event series): flat when objects come and go.
    pub fn records(&self) -> usize {
        self.children.recorded()
            + self.failures().len()
            + self.status_writes.remembered()
            + self.notices.len()
            + self.events.remembered()
    }

    /// Records into `metrics` (the runtime's registry) instead of a private one.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// How a successful reconcile's `action` shows in `controller_runtime_reconcile_total`.
    fn classify(&self, action: &Action) -> ReconcileResult {
        if *action == self.resync() || *action == Action::await_change() {
            ReconcileResult::Success
        } else if *action == Action::requeue(Duration::ZERO) {
            ReconcileResult::Requeue
        } else {
            ReconcileResult::RequeueAfter
        }
    }

    /// What a reconcile returns when the object has converged: look again at the resync
    /// interval (or sooner, when something it watches changes).
    pub fn resync(&self) -> Action {
        Action::requeue(self.settings.resync)
    }

    /// The `action` to schedule: a resync lands anywhere within ±10% of the interval, so
    /// objects that converged together (a start, a relist) drift apart instead of resyncing
    /// in one burst every interval.
    fn spread(&self, action: Action) -> Action {
        if action == self.resync() {
            Action::requeue(spread_resync(self.settings.resync, &mut rand::rng()))
        } else {
            action
        }
    }

    pub fn settings(&self) -> &ControllerSettings {
        &self.settings
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a failed reconcile of the object `uid`; returns how many in a row.
    fn failed(&self, uid: &str) -> u32 {
        let mut map = self.failures();
        let n = map.entry(uid.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// When to retry an object after `error`: spec errors wait for the resync (a spec edit
    /// triggers a reconcile at once anyway); transient errors back off per object.
    pub fn retry_after<E: ReconcileError>(&self, uid: &str, error: &E) -> Duration {
        if error.is_spec_error() {
            return self.settings.resync;
        }
        let failures = self.failures().get(uid).copied().unwrap_or(1);
        self.settings.backoff.jittered(failures, &mut rand::rng())
    }

    /// A success: returns how many failures in a row it ends.
    fn succeeded(&self, uid: &str) -> u32 {
        self.failures().remove(uid).unwrap_or(0)
    }
}

/// The namespace of a namespaced object read from the API server, which always sets it.
pub fn namespace_of<K: Resource<Scope = NamespaceResourceScope>>(obj: &K) -> &str {
    obj.meta()
        .namespace
        .as_deref()
        .expect("the API server sets the namespace of every namespaced object")
}

/// The labels of `obj`'s per-resource series.
fn resource_labels<K: Resource<DynamicType = ()>>(obj: &K) -> ResourceLabels {
    ResourceLabels {
        controller: K::kind(&()).to_lowercase(),
        namespace: obj.meta().namespace.clone().unwrap_or_default(),
        name: obj.meta().name.clone().unwrap_or_default(),
    }
}

/// Builds and runs the controller for the custom resource `K`.
pub struct OperatorController<K: WatchedKind, O> {
    controller: Controller<K>,
    ctx: Arc<Context<O>>,
    /// Resolves once every cache this controller reads has its first full list.
    caches_synced: Vec<BoxFuture<'static, ()>>,
    readiness: Option<Readiness>,
    /// Reconcile only while this says the replica leads (`None`: always).
    leading: Option<tokio::sync::watch::Receiver<bool>>,
    /// Resolves when the controller is to stop taking work.
    stopping: Option<worker::Stopping>,
}

impl<K: WatchedKind, O> Debug for OperatorController<K, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorController")
            .field("kind", &K::kind(&()))
            .finish_non_exhaustive()
    }
}

impl<K, O> OperatorController<K, O>
where
    K: WatchedKind,
    O: Send + Sync + 'static,
{
    pub fn new(ctx: Context<O>) -> Self {
        let api: Api<K> = match &ctx.settings.namespace {
            Some(ns) => Api::namespaced(ctx.client.clone(), ns),
            None => Api::all(ctx.client.clone()),
        };
        // The cache keeps of each resource's managed fields only who wrote its product
        // annotations, which is all a pass reads of them.
        let (store, writer) = reflector::store();
        let resources = watcher(api, watcher::Config::default())
            .modify(|resource: &mut K| keep_annotation_writers(resource.meta_mut()))
            .reflect(writer)
            .applied_objects();
        // Unbounded here: the workers bound concurrency (see `worker`).
        let controller = Controller::for_stream(resources, store.clone());
        let main_synced = async move {
            let _ = crate::readiness::cache_filled(&store).await;
        };
        Self {
            controller,
            ctx: Arc::new(ctx),
            caches_synced: vec![main_synced.boxed()],
            readiness: None,
            leading: None,
            stopping: None,
        }
    }

    /// Reports to `readiness` once every cache has synced.
    #[must_use]
    pub fn report_readiness(mut self, readiness: Readiness) -> Self {
        readiness.register_controller();
        self.readiness = Some(readiness);
        self
    }

    /// Watches (and so keeps every cache current) from the start, but reconciles only while
    /// `leading` is true; when it turns true, every cached object is reconciled. A standby
    /// replica that takes over then starts from warm caches instead of listing everything.
    #[must_use]
    pub fn reconcile_while_leading(mut self, leading: tokio::sync::watch::Receiver<bool>) -> Self {
        let mut became_leader = leading.clone();
        let trigger =
            futures::stream::once(
                async move { became_leader.wait_for(|leads| *leads).await.is_ok() },
            )
            .filter_map(|led| std::future::ready(led.then_some(())));
        self.controller = self.controller.reconcile_all_on(trigger);
        self.leading = Some(leading);
        self
    }

    /// Reconciles an owner whenever one of its children of a declared kind changes; the
    /// watches also keep the kinds' caches current.
    #[must_use]
    pub fn owns_children(mut self, watches: ChildWatches) -> Self {
        self.caches_synced.extend(watches.synced);
        if !watches.streams.is_empty() {
            let merged = futures::stream::select_all(watches.streams);
            self.controller = self.controller.watches_stream_with(
                merged,
                |child| ChildWatches::owner_of::<K>(&child),
                ChildWatches::api_resource(),
            );
        }
        self
    }

    /// Also reconciles when a related object that the owner does not control changes (e.g.
    /// a report an application writes): `stream` yields those objects, `mapper` names the
    /// owners to reconcile.
    #[must_use]
    pub fn watches_stream<Other, I>(
        mut self,
        stream: impl futures::Stream<Item = Result<Other, watcher::Error>> + Send + 'static,
        mapper: impl Fn(Other) -> I + Sync + Send + 'static,
    ) -> Self
    where
        Other:
            Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        I: 'static + IntoIterator<Item = ObjectRef<K>>,
        I::IntoIter: Send,
    {
        self.controller = self.controller.watches_stream(stream, mapper);
        self
    }

    /// Stops taking new work when `signal` completes; reconciles in flight finish.
    #[must_use]
    pub fn shutdown_on(mut self, signal: impl Future<Output = ()> + Send + Sync + 'static) -> Self {
        let stopping = signal.boxed().shared();
        self.controller = self.controller.graceful_shutdown_on(stopping.clone());
        self.stopping = Some(stopping);
        self
    }

    pub fn context(&self) -> Arc<Context<O>> {
        self.ctx.clone()
    }

    /// The cache of the resources this controller reconciles: for a mapper that finds which
    /// of them a related object concerns.
    pub fn store(&self) -> Store<K> {
        self.controller.store()
    }

    /// Runs until shutdown, reconciling each due object on one of
    /// [`ControllerSettings::concurrency`] workers (see `worker`); a failed object is retried
    /// per [`Context::retry_after`].
    pub async fn run<F, Fut, E>(self, reconcile: F)
    where
        F: Fn(Arc<K>, Arc<Context<O>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: ReconcileError,
        K::DynamicType: Eq + Hash + Clone + Debug + Unpin,
    {
        // One task waits for the caches (each wait is `readiness::cache_filled`, which looks
        // again rather than trust kube's signal to wake every waiter) and tells readiness and
        // the sweeper.
        let (synced_tx, synced_rx) = tokio::sync::watch::channel(false);
        let synced = futures::future::join_all(self.caches_synced);
        let readiness = self.readiness;
        let (store, kind) = (self.controller.store(), K::kind(&()).into_owned());
        tokio::spawn(async move {
            synced.await;
            tracing::info!(kind = %kind, objects = store.state().len(), "caches synced");
            if let Some(readiness) = readiness {
                readiness.controller_synced();
            }
            synced_tx.send_replace(true);
        });
        let controller_name = K::kind(&()).to_lowercase();
        let sweeper = tokio::spawn(sweep_forever(
            self.controller.store(),
            synced_rx,
            self.ctx.clone(),
            controller_name.clone(),
        ));
        let _stop_sweeping = AbortOnDrop(sweeper.abort_handle());
        let concurrency = self.ctx.settings.concurrency.max(1);
        self.ctx
            .metrics
            .declare_controller(&controller_name, concurrency);
        let workers = Arc::new(worker::Workers {
            controller: controller_name.clone(),
            permits: Arc::new(tokio::sync::Semaphore::new(usize::from(concurrency))),
            stopping: self.stopping,
            leading: self.leading,
        });
        let reconcile = Arc::new(reconcile);
        let name = controller_name.clone();
        self.controller
            .run(
                move |obj: Arc<K>, ctx: Arc<Context<O>>| {
                    let (workers, reconcile) = (workers.clone(), reconcile.clone());
                    async move { workers.reconcile(obj, ctx, &*reconcile).await }
                },
                move |obj: Arc<K>, error: &Failure<E>, ctx: Arc<Context<O>>| {
                    let uid = obj.meta().uid.clone().unwrap_or_default();
                    ctx.metrics.record_retry(&name);
                    Action::requeue(ctx.retry_after(&uid, error))
                },
                self.ctx,
            )
            .for_each(|result| {
                if let Err(error) = result {
                    tracing::debug!(controller = %controller_name, %error, "controller event");
                }
                std::future::ready(())
            })
            .await;
    }
}

/// The longest the sweep waits between two runs.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Sweeps per-object state of objects that no longer exist, once per resync interval (30 s
/// at most): what an operator without a finalizer never hears about.
async fn sweep_forever<K, O>(
    store: Store<K>,
    mut synced: tokio::sync::watch::Receiver<bool>,
    ctx: Arc<Context<O>>,
    controller: String,
) where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    // Before the first full list the cache is empty: sweeping then would drop everything.
    if synced.wait_for(|s| *s).await.is_err() {
        return;
    }
    loop {
        tokio::time::sleep(ctx.settings.resync.min(SWEEP_INTERVAL)).await;
        let live: Vec<(String, String, String)> = store
            .state()
            .iter()
            .map(|o| {
                let meta = o.meta();
                (
                    meta.uid.clone().unwrap_or_default(),
                    meta.namespace.clone().unwrap_or_default(),
                    meta.name.clone().unwrap_or_default(),
                )
            })
            .collect();
        ctx.sweep(&controller, &live);
    }
}

/// Aborts a background task when dropped (the controller's run ended or was cancelled).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The resync interval scaled by a random factor in [0.9, 1.1].
fn spread_resync(interval: Duration, rng: &mut impl Rng) -> Duration {
    interval.mul_f64(rng.random_range(0.9..=1.1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: 0.0,
        };
        let delays: Vec<u64> = (1..=8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let b = Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(100),
            jitter: 0.2,
        };
        let mut rng = StdRng::seed_from_u64(1);
        let delays: Vec<Duration> = (0..200).map(|_| b.jittered(2, &mut rng)).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_secs(16) && *d <= Duration::from_secs(24))
        );
        assert!(
            delays.iter().any(|d| *d != delays[0]),
            "jitter spreads retries"
        );
    }

    #[test]
    fn resyncs_of_objects_that_converged_together_drift_apart() {
        let interval = Duration::from_secs(10);
        let mut rng = StdRng::seed_from_u64(7);
        // 1,000 objects converge in the same instant, then resync 20 times.
        let mut due = vec![Duration::ZERO; 1000];
        for _ in 0..20 {
            for at in &mut due {
                let next = spread_resync(interval, &mut rng);
                assert!(next >= interval.mul_f64(0.9) && next <= interval.mul_f64(1.1));
                *at += next;
            }
        }
        // Where in the interval each one now falls: no second of it holds a burst.
        let mut per_second = [0usize; 10];
        for at in &due {
            per_second[(at.as_secs_f64() % 10.0) as usize] += 1;
        }
        let busiest = per_second.iter().max().copied().unwrap_or_default();
        assert!(busiest < 250, "{per_second:?}");
    }
}
