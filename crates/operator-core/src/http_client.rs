//! One HTTP/1.1 exchange with a server outside the cluster's API (Prometheus, a Git
//! repository), over TCP or TLS with the rustls kube already builds: connect, send one
//! request, read a bounded answer. One connection per exchange: these are rare requests.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;

/// Sends `request` (its URI absolute or just a path) to the server `url` names (https
/// through `tls`, built only when needed)
/// and answers its status and body, refusing a body over `limit` bytes. Errors say what
/// failed, naming the host.
pub async fn exchange<B>(
    url: &http::Uri,
    mut request: http::Request<B>,
    tls: impl FnOnce() -> Result<Arc<ClientConfig>, String>,
    limit: usize,
) -> Result<(u16, Bytes), String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let host = url.host().ok_or_else(|| format!("{url} names no host"))?;
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let https = url.scheme_str() == Some("https");
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = url.authority().map_or(host, |a| a.as_str());
    let header = http::HeaderValue::from_str(authority).map_err(|e| e.to_string())?;
    request.headers_mut().insert(http::header::HOST, header);
    // Sent in origin form (`/path?query`), which every server reads.
    if let Some(origin) = request.uri().path_and_query().cloned() {
        *request.uri_mut() = origin.as_str().parse().map_err(|e| format!("{e}"))?;
    }
    let tcp = TcpStream::connect((bare_host, port))
        .await
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    if https {
        let name = ServerName::try_from(bare_host.to_string())
            .map_err(|e| format!("{host:?} is not a TLS server name: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(tls()?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
        send(TokioIo::new(stream), request, limit).await
    } else {
        send(TokioIo::new(tcp), request, limit).await
    }
}

async fn send<I, B>(io: I, request: http::Request<B>, limit: usize) -> Result<(u16, Bytes), String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| format!("reading the answer to {method} {path}: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
    .await;
    driver.abort();
    result
}

/// A TLS client trusting the PEM certificates in `ca_file`, or the system's roots.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots(ca_file)?)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let Some(file) = ca_file else {
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        return Ok(roots);
    };
    let pem = std::fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{} is not PEM: {e}", file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{} holds a bad certificate: {e}", file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no certificate", file.display()));
    }
    Ok(roots)
}
