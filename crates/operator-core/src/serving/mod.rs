//! HTTP serving for everything an operator listens on (the admin endpoints, the admission
//! webhook). The ports are reachable by whatever the NetworkPolicy lets in, so the server
//! bounds what a client can hold: headers (and a TLS handshake) must arrive within
//! [`HEADER_TIMEOUT`], a connection lives at most [`CONNECTION_LIFETIME`] (then, or when
//! serving stops, it ends after the request in flight, if any: a client that keeps its
//! connection alive, as the API server does, never sees one cut mid-answer), and at most
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
/// How long a request in flight when its connection's lifetime ends may still take: the
/// longest an API server waits for a webhook (`timeoutSeconds` is at most 30).
pub const LAST_REQUEST_GRACE: Duration = Duration::from_secs(30);
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
    let lifetime = Lifetime {
        connection: CONNECTION_LIFETIME,
        last_request: LAST_REQUEST_GRACE,
    };
    serve_for(listener, router, stop, upgrade, lifetime).await
}

/// How long a connection is served, and how long its last request may then take.
#[derive(Clone, Copy, Debug)]
struct Lifetime {
    connection: Duration,
    last_request: Duration,
}

async fn serve_for<U, F, S>(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: watch::Receiver<bool>,
    upgrade: U,
    lifetime: Lifetime,
) -> std::io::Result<()>
where
    U: Fn(tokio::net::TcpStream) -> F + Clone + Send + 'static,
    F: Future<Output = Option<S>> + Send,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let budget = ConnectionBudget::new(MAX_CONNECTIONS);
    let stopping = stopped(stop.clone());
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
        let (upgrade, stop) = (upgrade.clone(), stop.clone());
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
                // At the end of its lifetime, or when serving stops, the connection ends once
                // the request in flight is answered (`Connection: close`), within the grace.
                tokio::pin!(connection);
                tokio::select! {
                    _ = connection.as_mut() => return,
                    () = tokio::time::sleep(lifetime.connection) => {}
                    () = stopped(stop) => {}
                }
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(lifetime.last_request, connection).await;
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
    use axum::routing::get;
    use http_body_util::{BodyExt, Empty};

    #[tokio::test]
    async fn a_request_in_flight_when_the_connection_ends_is_still_answered() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let slow = || async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            "answered"
        };
        let router = Router::new().route("/slow", get(slow));
        let (_stop, stop) = watch::channel(false);
        let lifetime = Lifetime {
            connection: Duration::from_secs(1),
            last_request: Duration::from_secs(5),
        };
        let accept = |stream| async move { Some(stream) };
        tokio::spawn(serve_for(listener, router, stop, accept, lifetime));

        // A client that keeps its connection, as the API server does; its request is in
        // flight when the connection's lifetime ends.
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let request = Request::get("/slow")
            .header(http::header::HOST, "operator")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender
            .send_request(request)
            .await
            .expect("answered, not cut");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["connection"], "close", "then it ends");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "answered");
    }

    #[tokio::test]
    async fn stopping_ends_the_connections_clients_kept() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new().route("/", get(|| async { "ok" }));
        let (stop, stopping) = watch::channel(false);
        tokio::spawn(serve(listener, router, stopping));

        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        let request = Request::get("/")
            .header(http::header::HOST, "operator")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        assert_eq!(sender.send_request(request).await.unwrap().status(), 200);

        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(2), connection)
            .await
            .expect("the server closed the kept connection")
            .unwrap()
            .unwrap();
    }
}
