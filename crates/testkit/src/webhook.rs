//! Calling a webhook as the API server does: an HTTPS POST of a JSON review, trusting only
//! the configuration's CA bundle, within the configuration's timeout, over a connection kept
//! alive between calls (a webhook that closes it gets a new one).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

/// Why a webhook gave no answer; the API server reports these as "failed calling webhook".
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0:?} is not an https URL")]
    Url(String),
    #[error("the CA bundle is unusable: {0}")]
    CaBundle(String),
    #[error("{0}")]
    Transport(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Local addresses that serve in-cluster Services: `(namespace, name, port)` → address.
pub(crate) type ServiceRoutes = HashMap<(String, String, u16), std::net::SocketAddr>;

/// POSTs `review` to the webhook a `clientConfig` names (a `url`, or a `service` routed to a
/// local address and verified for its DNS name), trusting only its `caBundle`; returns the
/// answer, or why there is none, worded as the API server words it.
pub(crate) async fn post_review(
    client: &serde_json::Value,
    routes: &ServiceRoutes,
    review: &serde_json::Value,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    let ca: k8s_openapi::ByteString = serde_json::from_value(client["caBundle"].clone())
        .map_err(|_| "x509: certificate signed by unknown authority (no caBundle)".to_string())?;
    let (url, server_name) = match (client["url"].as_str(), client["service"].as_object()) {
        (Some(url), _) => (url.to_string(), None),
        (None, Some(service)) => {
            let text = |k: &str| service.get(k).and_then(Value::as_str).unwrap_or_default();
            let (name, namespace) = (text("name"), text("namespace"));
            let port = service.get("port").and_then(Value::as_u64).unwrap_or(443) as u16;
            let path = service.get("path").and_then(Value::as_str).unwrap_or("/");
            let address = routes
                .get(&(namespace.to_string(), name.to_string(), port))
                .ok_or_else(|| format!("no endpoints available for service {name:?}"))?;
            (
                format!("https://{address}{path}"),
                Some(format!("{name}.{namespace}.svc")),
            )
        }
        (None, None) => return Err("the webhook has neither a url nor a service".into()),
    };
    let body = serde_json::to_vec(review).map_err(|e| e.to_string())?;
    let kept_alive = post(
        &url,
        server_name.as_deref(),
        &ca.0,
        body,
        Connection::KeptAlive,
    );
    let (status, answer) = tokio::time::timeout(timeout, kept_alive)
        .await
        .map_err(|_| CallError::Timeout(timeout))
        .and_then(|answer| answer)
        .map_err(|e| match e {
            CallError::Timeout(_) => format!("Post {url:?}: context deadline exceeded"),
            other => format!("Post {url:?}: {other}"),
        })?;
    if status != 200 {
        return Err(format!(
            "Post {url:?}: received unexpected status code {status}"
        ));
    }
    serde_json::from_slice(&answer).map_err(|e| format!("the answer is not a review: {e}"))
}

/// POSTs `body` to `url` over a new TLS connection, verifying the server against `ca_pem`;
/// returns the HTTP status and body.
pub async fn call(
    url: &str,
    ca_pem: &[u8],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), CallError> {
    call_verifying(url, None, ca_pem, body, timeout).await
}

/// [`call`], verifying the server's certificate for `server_name` (a Service's DNS name)
/// rather than the URL's host.
pub async fn call_verifying(
    url: &str,
    server_name: Option<&str>,
    ca_pem: &[u8],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), CallError> {
    tokio::time::timeout(
        timeout,
        post(url, server_name, ca_pem, body, Connection::New),
    )
    .await
    .map_err(|_| CallError::Timeout(timeout))?
}

/// Where a kept connection leads: the address, the name its certificate was verified for
/// and the CA bundle that verified it.
type Peer = (String, u16, String, Vec<u8>);

/// One open connection, ready for a request.
type Sender = SendRequest<Full<Bytes>>;

/// Idle connections, by peer, as the API server keeps them between webhook calls.
static IDLE: LazyLock<Mutex<HashMap<Peer, Vec<Sender>>>> = LazyLock::new(Mutex::default);

fn idle() -> std::sync::MutexGuard<'static, HashMap<Peer, Vec<Sender>>> {
    IDLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether a call goes over a kept connection (as the API server calls webhooks) or a new
/// one (to test a server's handshake).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Connection {
    KeptAlive,
    New,
}

async fn post(
    url: &str,
    server_name: Option<&str>,
    ca_pem: &[u8],
    body: Vec<u8>,
    connection: Connection,
) -> Result<(u16, Vec<u8>), CallError> {
    let uri: http::Uri = url.parse().map_err(|_| CallError::Url(url.to_string()))?;
    if uri.scheme_str() != Some("https") {
        return Err(CallError::Url(url.to_string()));
    }
    let host = uri
        .host()
        .ok_or_else(|| CallError::Url(url.to_string()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let peer: Peer = (
        host.clone(),
        port,
        server_name.unwrap_or(&host).to_string(),
        ca_pem.to_vec(),
    );
    let request = || {
        http::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(http::header::HOST, format!("{host}:{port}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.clone())))
            .map_err(|e| CallError::Transport(e.to_string()))
    };
    // A kept connection the webhook closed meanwhile fails before it is answered: the call
    // goes again on a new one, as the API server's client retries a reused connection.
    while connection == Connection::KeptAlive
        && let Some(mut sender) = kept(&peer).await
    {
        if let Ok(answer) = exchange(&mut sender, request()?).await {
            keep(peer, sender);
            return Ok(answer);
        }
    }
    let mut sender = connect(&peer).await?;
    let answer = exchange(&mut sender, request()?)
        .await
        .map_err(|e| CallError::Transport(format!("{host}:{port}: {e}")))?;
    if connection == Connection::KeptAlive {
        keep(peer, sender);
    }
    Ok(answer)
}

/// An idle connection to `peer` that is still open, if one is kept.
async fn kept(peer: &Peer) -> Option<Sender> {
    loop {
        let mut sender = idle().get_mut(peer)?.pop()?;
        if sender.ready().await.is_ok() {
            return Some(sender);
        }
    }
}

fn keep(peer: Peer, sender: Sender) {
    if !sender.is_closed() {
        idle().entry(peer).or_default().push(sender);
    }
}

/// A new TLS connection to `peer`, its certificate verified for the peer's name by its CA.
async fn connect(peer: &Peer) -> Result<Sender, CallError> {
    let (host, port, server_name, ca_pem) = peer;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| CallError::CaBundle(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| CallError::CaBundle(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(CallError::CaBundle("it holds no certificate".into()));
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| CallError::Transport(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = ServerName::try_from(server_name.clone())
        .map_err(|_| CallError::Url(format!("https://{server_name}")))?;
    let transport = |e: &dyn std::fmt::Display| CallError::Transport(format!("{host}:{port}: {e}"));
    let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
        .await
        .map_err(|e| transport(&e))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| transport(&e))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| transport(&e))?;
    // Runs until the webhook closes the connection or its last sender is dropped.
    tokio::spawn(connection);
    Ok(sender)
}

/// One request and its whole answer.
async fn exchange(
    sender: &mut Sender,
    request: http::Request<Full<Bytes>>,
) -> Result<(u16, Vec<u8>), hyper::Error> {
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls::pki_types::PrivateKeyDer;
    use serde_json::json;

    use super::*;
    use crate::tls::LocalCa;

    /// A webhook on loopback that allows every review, counting the connections it accepts;
    /// `keep_alive: false` closes each after its answer.
    async fn webhook(ca: &LocalCa, keep_alive: bool) -> (String, Arc<AtomicUsize>) {
        let issued = ca.server_certificate(&[]).unwrap();
        let certs = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/validate", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let Ok(tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let allow = hyper::service::service_fn(|_| async {
                    let review = json!({"response": {"uid": "1", "allowed": true}});
                    let body = Full::new(Bytes::from(review.to_string()));
                    Ok::<_, std::convert::Infallible>(http::Response::new(body))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(TokioIo::new(tls), allow),
                );
            }
        });
        (url, accepted)
    }

    /// Connections the webhook accepted for `reviews` reviews, each allowed.
    async fn connections_for(reviews: usize, keep_alive: bool) -> usize {
        let ca = LocalCa::new("webhook CA").unwrap();
        let (url, accepted) = webhook(&ca, keep_alive).await;
        let client = json!({"url": url, "caBundle": k8s_openapi::ByteString(ca.pem().into())});
        let review = json!({"request": {"uid": "1"}});
        for _ in 0..reviews {
            let timeout = Duration::from_secs(5);
            let answer = post_review(&client, &ServiceRoutes::new(), &review, timeout).await;
            assert_eq!(answer.unwrap()["response"]["allowed"], true);
        }
        accepted.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn reviews_go_over_one_kept_connection_as_an_api_server_sends_them() {
        assert_eq!(connections_for(5, true).await, 1);
    }

    #[tokio::test]
    async fn a_webhook_that_closes_its_connections_gets_a_new_one_for_each_review() {
        assert_eq!(connections_for(3, false).await, 3);
    }
}
