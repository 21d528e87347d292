//! Calling a webhook as the API server does: an HTTPS POST of a JSON review, trusting only
//! the configuration's CA bundle, within the configuration's timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
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
pub(crate) type ServiceRoutes =
    std::collections::HashMap<(String, String, u16), std::net::SocketAddr>;

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
    let (status, answer) = call_verifying(&url, server_name.as_deref(), &ca.0, body, timeout)
        .await
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

/// POSTs `body` to `url` over TLS, verifying the server against `ca_pem`; returns the HTTP
/// status and body.
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
    tokio::time::timeout(timeout, post(url, server_name, ca_pem, body))
        .await
        .map_err(|_| CallError::Timeout(timeout))?
}

async fn post(
    url: &str,
    server_name: Option<&str>,
    ca_pem: &[u8],
    body: Vec<u8>,
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
    let name = ServerName::try_from(server_name.unwrap_or(&host).to_string())
        .map_err(|_| CallError::Url(url.to_string()))?;
    let transport = |e: &dyn std::fmt::Display| CallError::Transport(format!("{host}:{port}: {e}"));
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| transport(&e))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| transport(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| transport(&e))?;
    let driver = tokio::spawn(connection);
    let request = http::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, format!("{host}:{port}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| transport(&e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| transport(&e));
    let answer = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| transport(&e))?
                .to_bytes()
                .to_vec();
            Ok((status, body))
        }
        Err(e) => Err(e),
    };
    driver.abort();
    answer
}
