//! The admin HTTP endpoints: `/healthz` (the process is alive), `/readyz` (connected to the
//! API server and, on the leader, every controller's cache synced; a standby is ready), and
//! `/metrics` (OpenMetrics text).
//!
//! The port is reachable by whatever the NetworkPolicy lets in, so the server bounds what a
//! client can hold: headers (and a TLS handshake) must arrive within [`HEADER_TIMEOUT`], a
//! connection lives at most [`CONNECTION_LIFETIME`], and at most [`MAX_CONNECTIONS`] are open
//! at once per listener: a new one sheds the oldest idle one (see `connections`), so idle
//! sockets cannot lock a probe, a scrape or the API server's admission call out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tower::ServiceExt;

use super::connections::ConnectionBudget;

use super::metrics::Metrics;

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may stay open (a scrape or probe takes milliseconds).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Connections open at once per listener; Prometheus and the kubelet need a handful.
pub const MAX_CONNECTIONS: usize = 64;
/// The content type of what `prometheus-client` writes.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What `/readyz` reports. Cheap to clone; clones share state.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    inner: Arc<ReadinessState>,
}

#[derive(Debug, Default)]
struct ReadinessState {
    connected: AtomicBool,
    leading: AtomicBool,
    controllers: AtomicUsize,
    synced: AtomicUsize,
    /// What keeps a service of this replica from working (the webhook's certificate), said
    /// on `/readyz` so `kubectl describe pod` shows it.
    problem: std::sync::Mutex<Option<String>>,
}

impl Readiness {
    pub fn set_connected(&self) {
        self.inner.connected.store(true, Ordering::SeqCst);
    }

    pub fn set_leading(&self, leading: bool) {
        self.inner.leading.store(leading, Ordering::SeqCst);
    }

    /// A controller that will report its caches synced once.
    pub fn register_controller(&self) {
        self.inner.controllers.fetch_add(1, Ordering::SeqCst);
    }

    pub fn controller_synced(&self) {
        self.inner.synced.fetch_add(1, Ordering::SeqCst);
    }

    /// Reports what keeps a service from working (`Some`), or that it works again (`None`).
    pub fn set_problem(&self, problem: Option<String>) {
        *self
            .inner
            .problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = problem;
    }

    /// Ready when connected, no service reports a problem, and either standing by or leading
    /// with every cache synced.
    pub fn is_ready(&self) -> bool {
        self.not_ready_because().is_none()
    }

    /// Why this replica is not ready, if it is not.
    pub fn not_ready_because(&self) -> Option<String> {
        let s = &self.inner;
        if let Some(problem) = s
            .problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            return Some(problem);
        }
        if !s.connected.load(Ordering::SeqCst) {
            return Some("the API server has not answered yet".to_string());
        }
        (s.leading.load(Ordering::SeqCst)
            && s.synced.load(Ordering::SeqCst) < s.controllers.load(Ordering::SeqCst))
        .then(|| "leading, and the controllers' caches are not synced yet".to_string())
    }
}

fn health_routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let problem = readiness.not_ready_because();
                async move {
                    match problem {
                        None => (StatusCode::OK, "ok".to_string()),
                        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")),
                    }
                }
            }),
        )
}

fn metrics_routes(metrics: Metrics) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let body = metrics.encode();
            async move { ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response() }
        }),
    )
}

/// The routers to serve: one per address (health and metrics may share one).
pub fn routers(
    health: Option<SocketAddr>,
    metrics_address: Option<SocketAddr>,
    readiness: Readiness,
    metrics: Metrics,
) -> Vec<(SocketAddr, Router)> {
    match (health, metrics_address) {
        (Some(h), Some(m)) if h == m => {
            vec![(h, health_routes(readiness).merge(metrics_routes(metrics)))]
        }
        (h, m) => h
            .map(|a| (a, health_routes(readiness)))
            .into_iter()
            .chain(m.map(|a| (a, metrics_routes(metrics))))
            .collect(),
    }
}

/// Serves a router until `stop` turns true, with the limits of the module docs.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    serve_upgraded(listener, router, stop, |stream| async move { Some(stream) }).await
}

/// [`serve`], each connection first passed through `upgrade` (a TLS handshake, which must
/// also finish within [`HEADER_TIMEOUT`]; `None` closes the connection).
pub(crate) async fn serve_upgraded<U, F, S>(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: watch::Receiver<bool>,
    upgrade: U,
) -> std::io::Result<()>
where
    U: Fn(tokio::net::TcpStream) -> F + Clone + Send + 'static,
    F: Future<Output = Option<S>> + Send,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let budget = ConnectionBudget::new(MAX_CONNECTIONS);
    let stopping = super::stopped(stop);
    tokio::pin!(stopping);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    continue;
                }
            },
            () = &mut stopping => return Ok(()),
        };
        // Full: the oldest idle connection makes room; refused only when all are answering.
        let Some(mut admitted) = budget.admit() else {
            drop(stream);
            continue;
        };
        let (router, activity, shed) = (router.clone(), admitted.activity(), admitted.shed());
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let (router, busy) = (router.clone(), activity.busy());
            async move {
                let response = router.oneshot(request.map(Body::new)).await;
                drop(busy);
                response
            }
        });
        let upgrade = upgrade.clone();
        tokio::spawn(async move {
            let served = async move {
                let Ok(Some(io)) = tokio::time::timeout(HEADER_TIMEOUT, upgrade(stream)).await
                else {
                    return;
                };
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(io), service);
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            };
            tokio::select! {
                () = served => {}
                _ = shed => {}
            }
            drop(admitted);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn started() -> std::io::Result<(SocketAddr, watch::Sender<bool>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let (_, router) = routers(Some(addr), Some(addr), Readiness::default(), Metrics::new())
            .into_iter()
            .next()
            .ok_or_else(|| std::io::Error::other("no router"))?;
        tokio::spawn(serve(listener, router, stop_rx));
        Ok((addr, stop))
    }

    /// 300 clients that send half a request each cannot hold the server: each is cut after
    /// the header timeout, and a well-behaved scrape is still answered meanwhile.
    #[tokio::test(start_paused = true)]
    async fn half_sent_requests_are_cut_and_do_not_starve_scrapes() -> std::io::Result<()> {
        let (addr, _stop) = started().await?;
        let mut slow = Vec::new();
        for _ in 0..300 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await?;
                slow.push(s);
            }
        }
        tokio::time::sleep(HEADER_TIMEOUT + Duration::from_secs(1)).await;
        let mut cut = 0;
        for s in &mut slow {
            let mut buf = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
                Ok(Ok(_)) | Ok(Err(_)) => cut += 1,
                Err(_) => {}
            }
        }
        assert_eq!(cut, slow.len(), "every half-sent request was cut");

        let mut scrape = tokio::net::TcpStream::connect(addr).await?;
        scrape
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = String::new();
        scrape.read_to_string(&mut answer).await?;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer
                .to_lowercase()
                .contains("content-type: application/openmetrics-text; version=1.0.0"),
            "the content type of the format written: {answer}"
        );
        assert!(answer.contains("# EOF"), "OpenMetrics text ends with # EOF");
        Ok(())
    }

    #[test]
    fn a_standby_is_ready_a_leader_waits_for_its_caches() {
        let r = Readiness::default();
        assert!(!r.is_ready(), "not before the API server answered");
        r.set_connected();
        r.register_controller();
        assert!(r.is_ready(), "a standby is ready");
        r.set_leading(true);
        assert!(!r.is_ready(), "a leader waits for its caches");
        r.controller_synced();
        assert!(r.is_ready());
        r.set_problem(Some("webhook certificate: no tls.crt".into()));
        assert_eq!(
            r.not_ready_because().as_deref(),
            Some("webhook certificate: no tls.crt"),
            "a service's problem is said on /readyz"
        );
        r.set_problem(None);
        assert!(r.is_ready());
    }
}
