//! The operator runtime against testkit: leader election between two instances sharing a
//! Lease, hand-over, loss of the lease, metrics and readiness. Lease timing runs on tokio's
//! paused clock, so 15-second leases pass instantly and deterministically.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use crate::common::*;
use anyhow::{Result, bail};
use futures::FutureExt;
use operator_core::metrics::Metrics;
use operator_core::readiness::Readiness;
use operator_core::runtime::admin;
use operator_core::runtime::{self, Runtime, RuntimeError};
use operator_core::{Context, ControllerSettings};
use testkit::ApiServer;
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

fn build(
    reconciles: Arc<AtomicUsize>,
) -> impl FnOnce(&Runtime) -> Vec<futures::future::BoxFuture<'static, ()>> {
    move |rt: &Runtime| {
        let (children, watches) = widget_children(rt.client(), rt.namespace());
        let ctx = rt
            .context(IDENTITY, WidgetOperator { reconciles })
            .with_children(children);
        vec![
            rt.controller::<Widget, _>(ctx)
                .owns_children(watches)
                .run(reconcile_widget)
                .boxed(),
        ]
    }
}

/// One operator instance: its reconcile count, its stop switch and its task.
struct Instance {
    reconciles: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), RuntimeError>>,
    metrics: Metrics,
}

fn start(client: kube::Client, identity: &str) -> Instance {
    let reconciles = Arc::new(AtomicUsize::new(0));
    let metrics = Metrics::new();
    let (stop, task) = runtime::spawn(
        client,
        leader_elected_config(identity),
        metrics.clone(),
        build(reconciles.clone()),
    );
    Instance {
        reconciles,
        stop,
        task,
        metrics,
    }
}

fn holder(server: &ApiServer) -> Option<String> {
    server
        .object("coordination.k8s.io/v1", "leases", "default", LEASE)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
}

/// Waits (on the paused clock) until `check` holds; returns when it did.
async fn wait_until(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return Ok(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{what} did not happen within {limit:?}")
}

#[tokio::test(start_paused = true)]
async fn only_the_leader_reconciles_and_a_graceful_stop_hands_over() -> Result<()> {
    let server = server_with_crd().await?;
    let a = start(server.client(), "a");
    wait_until("a leads", Duration::from_secs(5), || {
        holder(&server).as_deref() == Some("a")
    })
    .await?;
    let b = start(server.client(), "b");
    create_widget(&server, "one", 1).await?;
    wait_until("a reconciles", Duration::from_secs(10), || {
        a.reconciles.load(Ordering::SeqCst) > 0
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        b.reconciles.load(Ordering::SeqCst),
        0,
        "the standby never reconciles"
    );
    assert!(a.metrics.encode().contains(&format!(
        "leader_election_master_status{{name=\"{LEASE}\"}} 1"
    )));
    assert!(b.metrics.encode().contains(&format!(
        "leader_election_master_status{{name=\"{LEASE}\"}} 0"
    )));

    // A graceful stop releases the lease: b takes over well within one lease duration.
    let stopped_at = Instant::now();
    a.stop.send_replace(true);
    a.task.await??;
    let b_leads = wait_until("b leads", Duration::from_secs(15), || {
        holder(&server).as_deref() == Some("b")
    })
    .await?;
    assert!(b_leads - stopped_at < Duration::from_secs(15));
    create_widget(&server, "two", 2).await?;
    wait_until("b reconciles", Duration::from_secs(10), || {
        b.reconciles.load(Ordering::SeqCst) > 0
    })
    .await?;
    wait_until("b's child", Duration::from_secs(10), || {
        server
            .object("v1", "configmaps", "default", "two-config")
            .is_some()
    })
    .await?;
    b.stop.send_replace(true);
    b.task.await??;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_crashed_leader_is_replaced_after_its_lease_expires() -> Result<()> {
    let server = server_with_crd().await?;
    let a = start(server.client(), "a");
    wait_until("a leads", Duration::from_secs(5), || {
        holder(&server).as_deref() == Some("a")
    })
    .await?;
    let b = start(server.client(), "b");
    tokio::time::sleep(Duration::from_secs(5)).await;

    // A crash: no release, the lease is simply not renewed any more.
    a.task.abort();
    let crashed_at = Instant::now();
    let b_leads = wait_until("b leads", Duration::from_secs(40), || {
        holder(&server).as_deref() == Some("b")
    })
    .await?;
    let took = b_leads - crashed_at;
    // b must wait out the lease it last saw renewed (up to one retry period before the
    // crash), and notices at its next retry.
    assert!(
        took >= Duration::from_secs(11),
        "took over too early: {took:?}"
    );
    assert!(
        took <= Duration::from_secs(15 + 2 * 2),
        "took over too late: {took:?}"
    );
    b.stop.send_replace(true);
    b.task.await??;
    Ok(())
}

/// A client whose Lease writes fail once `broken` is set, as when the API server is
/// unreachable from one replica only.
#[derive(Clone)]
struct BrokenLeases {
    inner: ApiServer,
    broken: Arc<AtomicBool>,
}

impl tower::Service<http::Request<kube::client::Body>> for BrokenLeases {
    type Response = http::Response<testkit::ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<http::Request<kube::client::Body>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        if self.broken.load(Ordering::SeqCst) && req.uri().path().contains("/leases") {
            return Box::pin(async {
                Ok(http::Response::builder()
                    .status(503)
                    .body(http_body_util::BodyExt::boxed_unsync(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"{}")),
                    ))
                    .unwrap_or_default())
            });
        }
        self.inner.call(req)
    }
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_cannot_renew_stops_before_another_can_acquire() -> Result<()> {
    let server = server_with_crd().await?;
    let broken = Arc::new(AtomicBool::new(false));
    let a_client = kube::Client::new(
        BrokenLeases {
            inner: server.clone(),
            broken: broken.clone(),
        },
        "default",
    );
    let a = start(a_client, "a");
    wait_until("a leads", Duration::from_secs(5), || {
        holder(&server).as_deref() == Some("a")
    })
    .await?;
    let b = start(server.client(), "b");
    create_widget(&server, "one", 1).await?;
    wait_until("a reconciles", Duration::from_secs(10), || {
        a.reconciles.load(Ordering::SeqCst) > 0
    })
    .await?;

    broken.store(true, Ordering::SeqCst);
    let mut a_task = a.task;
    let a_stopped = loop {
        tokio::select! {
            result = &mut a_task => {
                assert!(matches!(result?, Err(RuntimeError::LostLease(_))), "a reports the lost lease");
                break Instant::now();
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                assert_ne!(holder(&server).as_deref(), Some("b"), "b acquired while a still led");
            }
        }
    };
    let reconciles_at_stop = a.reconciles.load(Ordering::SeqCst);
    let b_leads = wait_until("b leads", Duration::from_secs(30), || {
        holder(&server).as_deref() == Some("b")
    })
    .await?;
    assert!(a_stopped < b_leads, "a stopped before b acquired");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        a.reconciles.load(Ordering::SeqCst),
        reconciles_at_stop,
        "a reconciles nothing after it stopped"
    );
    b.stop.send_replace(true);
    b.task.await??;
    Ok(())
}

#[tokio::test]
async fn metrics_name_each_reconcile_result() -> Result<()> {
    let server = server_with_crd().await?;
    let mut cfg = leader_elected_config("solo");
    cfg.leader_election = None;
    let reconciles = Arc::new(AtomicUsize::new(0));
    let metrics = Metrics::new();
    let (stop, task) = runtime::spawn(
        server.client(),
        cfg,
        metrics.clone(),
        build(reconciles.clone()),
    );
    create_widget(&server, "w", 1).await?;
    eventually("a reconcile", || reconciles.load(Ordering::SeqCst) > 0).await?;
    eventually("metrics", || {
        metrics
            .encode()
            .contains(r#"controller_runtime_reconcile_total{controller="widget",result="success"}"#)
    })
    .await?;
    let text = metrics.encode();
    for name in [
        r#"controller_runtime_reconcile_time_seconds_count{controller="widget"}"#,
        r#"controller_runtime_active_workers{controller="widget"}"#,
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
    stop.send_replace(true);
    task.await??;
    Ok(())
}

#[tokio::test]
async fn readyz_waits_for_the_leaders_caches() -> Result<()> {
    let server = server_with_crd().await?;
    let readiness = Readiness::default();
    let probe = |readiness: Readiness| async move {
        let endpoints = admin::endpoints(
            Some(([127, 0, 0, 1], 8081).into()),
            None,
            readiness,
            Metrics::new(),
            None,
        );
        let endpoint = endpoints
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no router"))?;
        let response = endpoint
            .router
            .oneshot(http::Request::get("/readyz").body(axum::body::Body::empty())?)
            .await?;
        anyhow::Ok(response.status().as_u16())
    };
    readiness.set_connected();
    readiness.set_leading(true);
    let (children, watches) = widget_children(server.client(), None);
    let ctx = Context::new(
        server.client(),
        IDENTITY,
        ControllerSettings::default(),
        WidgetOperator::default(),
    )
    .with_children(children);
    let controller = operator_core::OperatorController::<Widget, _>::new(ctx)
        .owns_children(watches)
        .report_readiness(readiness.clone());
    assert_eq!(
        probe(readiness.clone()).await?,
        503,
        "not ready before the caches sync"
    );
    tokio::spawn(controller.run(reconcile_widget));
    eventually("caches synced", || readiness.is_ready()).await?;
    assert_eq!(probe(readiness.clone()).await?, 200);
    Ok(())
}
