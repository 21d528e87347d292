//! A banking partner's health endpoint on loopback: https with a CA of its own, generated at
//! start, answering `200 OK` or `503` as the test sets it. Tests, the e2e suite and the demo
//! point a clearing adapter's partner at it instead of sending traffic anywhere else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::tls::{IssuedCertificate, LocalCa};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running stand-in; it stops when dropped.
#[derive(Debug)]
pub struct PartnerStandIn {
    addr: SocketAddr,
    ca_pem: String,
    /// With mutual TLS: a client certificate (PEM chain, PEM key) it accepts.
    client: Option<(String, String)>,
    healthy: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for PartnerStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn server_identity(
    certificate: &IssuedCertificate,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), std::io::Error> {
    let cert = CertificateDer::from_pem_slice(certificate.cert_pem.as_bytes())
        .map_err(std::io::Error::other)?;
    let key = PrivateKeyDer::from_pem_slice(certificate.key_pem.as_bytes())
        .map_err(std::io::Error::other)?;
    Ok((cert, key))
}

impl PartnerStandIn {
    /// Starts on `127.0.0.1`, on a free port, healthy.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(false).await
    }

    /// [`Self::start`], requiring a client certificate ([`Self::client_identity`]).
    pub async fn start_mutual() -> std::io::Result<Self> {
        Self::start_with(true).await
    }

    async fn start_with(mutual: bool) -> std::io::Result<Self> {
        let ca = LocalCa::new("testkit partner CA").map_err(std::io::Error::other)?;
        let (cert, key) =
            server_identity(&ca.server_certificate(&[]).map_err(std::io::Error::other)?)?;
        let ca_pem = ca.pem().to_string();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?;
        let (builder, client) = if mutual {
            let client_ca =
                LocalCa::new("testkit partner client CA").map_err(std::io::Error::other)?;
            let issued = client_ca
                .client_certificate("clearing-adapter")
                .map_err(std::io::Error::other)?;
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(
                    CertificateDer::from_pem_slice(client_ca.pem().as_bytes())
                        .map_err(std::io::Error::other)?,
                )
                .map_err(std::io::Error::other)?;
            let (chain, client_key) = (issued.cert_pem, issued.key_pem);
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(std::io::Error::other)?;
            (
                builder.with_client_cert_verifier(verifier),
                Some((chain, client_key)),
            )
        } else {
            (builder.with_no_client_auth(), None)
        };
        let config = builder
            .with_single_cert(vec![cert], key)
            .map_err(std::io::Error::other)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let healthy = Arc::new(AtomicBool::new(true));
        let requests = Arc::new(AtomicUsize::new(0));
        let (state, count) = (healthy.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, state, count) = (acceptor.clone(), state.clone(), count.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |_request| {
                        count.fetch_add(1, Ordering::SeqCst);
                        let (code, body) = if state.load(Ordering::SeqCst) {
                            (200, "ok")
                        } else {
                            (503, "unavailable")
                        };
                        let response = http::Response::builder()
                            .status(code)
                            .body(Full::new(Bytes::from_static(body.as_bytes())));
                        async move { response }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            ca_pem,
            client,
            healthy,
            requests,
            task,
        })
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The PEM of the CA that signed its certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// With [`Self::start_mutual`]: the client certificate chain and key (PEM) it accepts.
    pub fn client_identity(&self) -> Option<(&str, &str)> {
        self.client.as_ref().map(|(c, k)| (c.as_str(), k.as_str()))
    }

    /// Answer `200` (true) or `503` (false) from now on.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}
