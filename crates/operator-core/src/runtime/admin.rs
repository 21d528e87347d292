//! The admin HTTP endpoints: `/healthz` (the process is alive), `/readyz` (connected to the
//! API server and, on the leader, every controller's cache synced; a standby is ready; see
//! [`Readiness`]), and `/metrics` (OpenMetrics text; with `--metrics-secure`, over HTTPS to
//! reviewed tokens only, see [`super::metrics_access`]), served with the limits of
//! [`crate::serving`].

use std::net::SocketAddr;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::metrics_access::MetricsAccess;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
#[cfg(test)]
use crate::serving::{HEADER_TIMEOUT, serve};

/// The content type of what `prometheus-client` writes.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

/// One listener of the admin endpoints.
#[derive(Debug)]
pub struct Endpoint {
    pub address: SocketAddr,
    pub router: Router,
    /// Served over TLS: `/metrics` behind its review.
    pub secure: bool,
    pub serves: &'static str,
}

/// The listeners to serve: health and metrics share one at the same address, unless
/// `secured` puts `/metrics` behind its review on one of its own.
pub fn endpoints(
    health: Option<SocketAddr>,
    metrics_address: Option<SocketAddr>,
    readiness: Readiness,
    metrics: Metrics,
    secured: Option<MetricsAccess>,
) -> Vec<Endpoint> {
    let endpoint = |address, router, secure, serves| Endpoint {
        address,
        router,
        secure,
        serves,
    };
    match (health, metrics_address, secured) {
        (Some(h), Some(m), None) if h == m => vec![endpoint(
            h,
            health_routes(readiness).merge(metrics_routes(metrics)),
            false,
            "/healthz /readyz /metrics",
        )],
        (h, m, secured) => {
            let secure = secured.is_some();
            let metrics_router = match secured {
                Some(access) => access.guard(metrics_routes(metrics)),
                None => metrics_routes(metrics),
            };
            h.map(|a| endpoint(a, health_routes(readiness), false, "/healthz /readyz"))
                .into_iter()
                .chain(m.map(|a| endpoint(a, metrics_router, secure, "/metrics")))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::watch;

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn started() -> std::io::Result<(SocketAddr, watch::Sender<bool>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let Endpoint { router, .. } = endpoints(
            Some(addr),
            Some(addr),
            Readiness::default(),
            Metrics::new(),
            None,
        )
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
}
