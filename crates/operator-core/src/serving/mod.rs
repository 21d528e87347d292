//! HTTP serving for everything an operator listens on (the admin endpoints, the admission
//! webhook). The ports are reachable by whatever the NetworkPolicy lets in, so the server
//! bounds what a client can hold: headers (and a TLS handshake) must arrive within
//! [`HEADER_TIMEOUT`], a connection lives at most [`CONNECTION_LIFETIME`], and at most
//! [`MAX_CONNECTIONS`] are open at once per listener: a new one sheds the oldest idle one
//! (see `connections`), so idle sockets cannot lock a probe, a scrape or the API server's
//! admission call out.

mod connections;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tower::ServiceExt;

use connections::ConnectionBudget;

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may stay open (a scrape or probe takes milliseconds).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Connections open at once per listener; Prometheus and the kubelet need a handful.
pub const MAX_CONNECTIONS: usize = 64;
/// Resolves once `stop` turns true; never, if its sender goes away without saying so.
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
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
    let stopping = stopped(stop);
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
