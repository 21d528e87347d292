//! One leader at a time, however late the API server answers; and a SIGTERM lets the work in
//! flight finish before the lease goes. On tokio's paused clock, so lease timing is exact.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use crate::common::*;
use anyhow::{Result, bail};
use futures::FutureExt;
use futures::future::BoxFuture;
use kube::runtime::controller::Action;
use operator_core::metrics::Metrics;
use operator_core::runtime::leader;
use operator_core::runtime::{self, Runtime, RuntimeError};
use operator_core::{Context, Error};
use testkit::{ApiServer, Verb};
use tokio::sync::watch;
use tokio::time::Instant;

fn holder(server: &ApiServer) -> Option<String> {
    server
        .object("coordination.k8s.io/v1", "leases", "default", LEASE)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
}

async fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{what} did not happen within {limit:?}")
}

/// Reconciles that take `work` each, counting starts and completions.
#[derive(Clone, Debug, Default)]
struct Slow {
    started: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
    work: Duration,
}

fn build(slow: Slow) -> impl FnOnce(&Runtime) -> Vec<BoxFuture<'static, ()>> {
    move |rt: &Runtime| {
        let ctx = rt.context(IDENTITY, slow);
        let reconcile = |_: Arc<Widget>, ctx: Arc<Context<Slow>>| async move {
            ctx.operator.started.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(ctx.operator.work).await;
            ctx.operator.finished.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Error>(Action::await_change())
        };
        vec![rt.controller::<Widget, _>(ctx).run(reconcile).boxed()]
    }
}

struct Instance {
    slow: Slow,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), RuntimeError>>,
}

fn start(client: kube::Client, identity: &str, work: Duration) -> Instance {
    let slow = Slow {
        work,
        ..Slow::default()
    };
    let (stop, task) = runtime::spawn(
        client,
        leader_elected_config(identity),
        Metrics::new(),
        build(slow.clone()),
    );
    Instance { slow, stop, task }
}

/// Lease requests: answered normally, or applied at once but answered `delay` late (the
/// renewal lands, its answer does not come back in time), and after that never answered.
#[derive(Clone)]
struct LateLeaseAnswers {
    inner: ApiServer,
    /// 0: normal; 1: the next lease write is answered late; 2: lease requests hang.
    mode: Arc<AtomicUsize>,
    delay: Duration,
}

impl tower::Service<http::Request<kube::client::Body>> for LateLeaseAnswers {
    type Response = http::Response<testkit::ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<http::Request<kube::client::Body>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        let lease = req.uri().path().contains("/leases");
        let write = req.method() == http::Method::PUT;
        let mode = self.mode.clone();
        let delay = self.delay;
        let answer = self.inner.call(req);
        Box::pin(async move {
            match (lease, mode.load(Ordering::SeqCst)) {
                (true, 1) if write => {
                    let response = answer.await;
                    mode.store(2, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    response
                }
                (true, 2) => std::future::pending().await,
                _ => answer.await,
            }
        })
    }
}

/// The incident: one renewal answered 7.9 s late, the next cut off; the second replica
/// acquired the Lease 1.8 s before the first stopped reconciling, because the first counted
/// its lease from when the answer arrived.
#[tokio::test(start_paused = true)]
async fn a_renewal_answered_late_does_not_extend_the_leadership() -> Result<()> {
    let server = server_with_crd().await?;
    let mode = Arc::new(AtomicUsize::new(0));
    let a_client = kube::Client::new(
        LateLeaseAnswers {
            inner: server.clone(),
            mode: mode.clone(),
            delay: Duration::from_millis(7_900),
        },
        "default",
    );
    let a = start(a_client, "a", Duration::from_millis(10));
    wait_until("a leads", Duration::from_secs(5), || {
        holder(&server).as_deref() == Some("a")
    })
    .await?;
    let b = start(server.client(), "b", Duration::from_millis(10));
    create_widget(&server, "one", 1).await?;
    wait_until("a reconciles", Duration::from_secs(10), || {
        a.slow.finished.load(Ordering::SeqCst) > 0
    })
    .await?;

    mode.store(1, Ordering::SeqCst);
    let mut a_task = a.task;
    let a_stopped = loop {
        tokio::select! {
            result = &mut a_task => {
                assert!(matches!(result?, Err(RuntimeError::LostLease(_))), "a reports the lost lease");
                break Instant::now();
            }
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                assert_ne!(holder(&server).as_deref(), Some("b"), "b acquired while a still led");
            }
        }
    };
    let mut b_leads = None;
    wait_until("b leads", Duration::from_secs(30), || {
        let leads = holder(&server).as_deref() == Some("b");
        if leads {
            b_leads.get_or_insert(Instant::now());
        }
        leads
    })
    .await?;
    assert!(b_leads.is_some_and(|at| a_stopped < at));
    b.stop.send_replace(true);
    b.task.await??;
    Ok(())
}

/// SIGTERM: stop taking work, let the reconcile in flight finish, then release the lease,
/// then exit; the standby takes over at once.
#[tokio::test(start_paused = true)]
async fn sigterm_lets_the_reconcile_in_flight_finish_before_the_lease_goes() -> Result<()> {
    let server = server_with_crd().await?;
    let a = start(server.client(), "a", Duration::from_secs(8));
    wait_until("a leads", Duration::from_secs(5), || {
        holder(&server).as_deref() == Some("a")
    })
    .await?;
    let b = start(server.client(), "b", Duration::from_millis(10));
    create_widget(&server, "one", 1).await?;
    wait_until("a's reconcile starts", Duration::from_secs(10), || {
        a.slow.started.load(Ordering::SeqCst) == 1
    })
    .await?;

    a.stop.send_replace(true);
    // While the reconcile runs, a keeps the lease and b stays a standby.
    wait_until("the reconcile finishes", Duration::from_secs(20), || {
        let finished = a.slow.finished.load(Ordering::SeqCst) == 1;
        if !finished {
            assert_eq!(
                holder(&server).as_deref(),
                Some("a"),
                "the lease went before the work"
            );
            assert_eq!(
                b.slow.started.load(Ordering::SeqCst),
                0,
                "two replicas at work"
            );
        }
        finished
    })
    .await?;
    a.task.await??;
    assert_ne!(
        holder(&server).as_deref(),
        Some("a"),
        "released on the way out"
    );
    wait_until("b takes over", Duration::from_secs(5), || {
        holder(&server).as_deref() == Some("b")
    })
    .await?;
    b.stop.send_replace(true);
    b.task.await??;
    Ok(())
}

/// A standby lists and watches from the start, so a failover relists nothing; it reconciles
/// nothing until it leads, and then every object it has cached.
#[tokio::test(start_paused = true)]
async fn a_standby_keeps_its_cache_warm_and_reconciles_only_once_it_leads() -> Result<()> {
    let server = server_with_crd().await?;
    let a = start(server.client(), "a", Duration::from_millis(10));
    wait_until("a leads", Duration::from_secs(5), || {
        holder(&server).as_deref() == Some("a")
    })
    .await?;
    for i in 0..5 {
        create_widget(&server, &format!("w{i}"), i).await?;
    }
    wait_until("a reconciles all five", Duration::from_secs(10), || {
        a.slow.finished.load(Ordering::SeqCst) >= 5
    })
    .await?;

    server.reset_stats();
    let b = start(server.client(), "b", Duration::from_millis(10));
    wait_until(
        "b watches while standing by",
        Duration::from_secs(10),
        || server.stats().count(Verb::Watch, "widgets") > 0,
    )
    .await?;
    create_widget(&server, "w5", 5).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        b.slow.started.load(Ordering::SeqCst),
        0,
        "a standby reconciled"
    );

    a.stop.send_replace(true);
    a.task.await??;
    wait_until("b leads", Duration::from_secs(10), || {
        holder(&server).as_deref() == Some("b")
    })
    .await?;
    server.reset_stats();
    wait_until("b reconciles all six", Duration::from_secs(10), || {
        b.slow.finished.load(Ordering::SeqCst) >= 6
    })
    .await?;
    assert_eq!(
        server.stats().count(Verb::List, "widgets"),
        0,
        "the new leader listed again"
    );
    b.stop.send_replace(true);
    b.task.await??;
    Ok(())
}

/// What `build` returns besides controllers (an admission webhook's server) runs on every
/// replica, leader or not; `Runtime::leading` tells it which it is.
#[tokio::test(start_paused = true)]
async fn services_run_on_a_standby_too() -> Result<()> {
    let server = server_with_crd().await?;
    let a = start(server.client(), "a", Duration::from_millis(10));
    wait_until("a leads", Duration::from_secs(5), || {
        holder(&server).as_deref() == Some("a")
    })
    .await?;
    let served = Arc::new(AtomicUsize::new(0));
    let standby_saw = Arc::new(AtomicUsize::new(usize::MAX));
    let (served_by_b, saw) = (served.clone(), standby_saw.clone());
    let (b_stop, b_task) = runtime::spawn(
        server.client(),
        leader_elected_config("b"),
        Metrics::new(),
        move |rt| {
            let (leading, stopping) = (rt.leading(), rt.stopping());
            vec![
                async move {
                    saw.store(usize::from(*leading.borrow()), Ordering::SeqCst);
                    served_by_b.fetch_add(1, Ordering::SeqCst);
                    stopping.await;
                }
                .boxed(),
            ]
        },
    );
    wait_until("b's service runs", Duration::from_secs(5), || {
        served.load(Ordering::SeqCst) == 1
    })
    .await?;
    assert_eq!(
        standby_saw.load(Ordering::SeqCst),
        0,
        "b knows it stands by"
    );
    assert_eq!(holder(&server).as_deref(), Some("a"));
    b_stop.send_replace(true);
    b_task.await??;
    a.stop.send_replace(true);
    a.task.await??;
    Ok(())
}

/// If the campaign is gone, whatever the reason, leadership is over.
#[tokio::test(start_paused = true)]
async fn leadership_ends_when_its_deadline_passes_or_the_campaign_is_gone() {
    let (tx, mut rx) = watch::channel(Some(Instant::now() + Duration::from_secs(10)));
    let started = Instant::now();
    leader::lost(&mut rx).await;
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "not before the deadline"
    );

    let (tx2, mut rx2) = watch::channel(Some(Instant::now() + Duration::from_secs(3600)));
    drop(tx2);
    let started = Instant::now();
    leader::lost(&mut rx2).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a dropped campaign ends it at once"
    );
    drop(tx);
}
