//! The server on a loopback socket, for tools that need a URL (kubectl, an operator binary
//! started with `KUBECONFIG`), and the kubeconfig that points at it.

use std::future::Future;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::Request;

use crate::ApiServer;
use crate::server;

/// Serves `api` over plain HTTP/1.1 on `listener` until `shutdown` completes.
pub async fn serve(
    api: ApiServer,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().fallback(move |req: Request| {
        let shared = api.shared.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let response = server::handle(shared, http::Request::from_parts(parts, bytes)).await;
            response.map(Body::new)
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A kubeconfig whose one context talks to the server at `addr` in namespace `default`.
pub fn kubeconfig(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: testkit
  cluster:
    server: http://{addr}
contexts:
- name: testkit
  context:
    cluster: testkit
    user: testkit
    namespace: default
current-context: testkit
users:
- name: testkit
  user: {{}}
"
    )
}
