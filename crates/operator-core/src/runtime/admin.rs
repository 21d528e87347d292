//! The admin HTTP endpoints: `/healthz` (the process is alive), `/readyz` (connected to the
//! API server and, on the leader, every controller's cache synced; a standby is ready), and
//! `/metrics` (Prometheus text).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use super::metrics::Metrics;

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

    /// Ready when connected and either standing by or leading with every cache synced.
    pub fn is_ready(&self) -> bool {
        let s = &self.inner;
        s.connected.load(Ordering::SeqCst)
            && (!s.leading.load(Ordering::SeqCst)
                || s.synced.load(Ordering::SeqCst) >= s.controllers.load(Ordering::SeqCst))
    }
}

fn health_routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = readiness.is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
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
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    body,
                )
                    .into_response()
            }
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

/// Serves a router until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(super::stopped(stop))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
