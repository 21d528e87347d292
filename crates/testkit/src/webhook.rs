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
