//! Partner health checks: a GET of each partner's health endpoint over https, trusting the
//! partner's CA (and presenting the adapter's client certificate where the partner asks for
//! mutual TLS), bounded by a timeout. [`PartnerProbe`] is the seam tests replace, so no test
//! needs a network; [`HttpsProbe`] is the real one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use operator_core::credentials::Hidden;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;

/// One partner's health endpoint and what to trust when calling it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProbeTarget {
    pub partner: String,
    /// `endpoint` + `healthCheckPath`.
    pub url: String,
    /// PEM CA bundle from the partner's `tls.caSecretRef`; the system roots when `None`.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM certificate chain and key of the adapter's client certificate, kept out of logs.
    pub client_identity: Option<Hidden<(Vec<u8>, Vec<u8>)>>,
    pub timeout: Duration,
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub healthy: bool,
    /// What happened, in words (`HTTP 200`, `connection refused`, `timed out after 5s`).
    pub message: String,
}

impl Verdict {
    pub fn healthy(message: impl Into<String>) -> Self {
        Self {
            healthy: true,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            healthy: false,
            message: message.into(),
        }
    }
}

/// Checks one partner; never panics, never takes longer than the target's timeout.
pub trait PartnerProbe: Send + Sync + 'static {
    fn check<'a>(&'a self, target: &'a ProbeTarget) -> BoxFuture<'a, Verdict>;
}

/// The real check: HTTP/1.1 GET over TLS 1.2+, 2xx is healthy.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpsProbe;

impl PartnerProbe for HttpsProbe {
    fn check<'a>(&'a self, target: &'a ProbeTarget) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            match tokio::time::timeout(target.timeout, get(target)).await {
                Ok(Ok(status)) if status.is_success() => {
                    Verdict::healthy(format!("HTTP {}", status.as_u16()))
                }
                Ok(Ok(status)) => Verdict::failed(format!("HTTP {}", status.as_u16())),
                Ok(Err(why)) => Verdict::failed(why),
                Err(_) => Verdict::failed(format!(
                    "no answer within {}s",
                    target.timeout.as_secs_f64()
                )),
            }
        })
    }
}

fn tls_config(target: &ProbeTarget) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    match &target.ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("the CA bundle is not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("the CA bundle holds a bad certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err("the CA bundle holds no certificate".into());
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots);
    match target.client_identity.as_ref().map(Hidden::expose) {
        Some((chain, key)) => {
            let chain = CertificateDer::pem_slice_iter(chain)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the client certificate is not PEM: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| format!("the client key is not PEM: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate is unusable: {e}"))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

async fn get(target: &ProbeTarget) -> Result<http::StatusCode, String> {
    let uri: http::Uri = target
        .url
        .parse()
        .map_err(|e| format!("{:?} is not a URL: {e}", target.url))?;
    let host = uri.host().ok_or("the URL has no host")?;
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let config = tls_config(target)?;
    let server_name = ServerName::try_from(bare_host.clone())
        .map_err(|e| format!("{host:?} is not a TLS server name: {e}"))?;
    let tcp = TcpStream::connect((bare_host.as_str(), port))
        .await
        .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP with {host}:{port}: {e}"))?;
    let driver = tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let request = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, "clearing-adapter-operator")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("building the request: {e}"))?;
    let response = sender.send_request(request).await;
    driver.abort();
    response
        .map(|r| r.status())
        .map_err(|e| format!("GET {path}: {e}"))
}
