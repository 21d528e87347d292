//! A banking partner's health endpoint on loopback: https with a CA of its own, generated at
//! start, answering `200 OK` or `503` as the test sets it. Tests, the e2e suite and the demo
//! point a clearing adapter's partner at it instead of sending traffic anywhere else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
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

/// A CA and a server certificate for `127.0.0.1` and `localhost` signed by it.
fn certificates() -> Result<(String, CertificateDer<'static>, PrivateKeyDer<'static>), rcgen::Error>
{
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "testkit partner CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["localhost".to_string()])?;
    server
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = server.signed_by(&key, &issuer)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((ca_cert.pem(), cert.der().clone(), key))
}

/// A client CA and a client certificate it signed: the CA's DER, and the certificate's PEM
/// chain and key.
fn client_certificate() -> Result<(CertificateDer<'static>, String, String), rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "testkit partner client CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client
        .distinguished_name
        .push(DnType::CommonName, "clearing-adapter");
    let cert = client.signed_by(&key, &issuer)?;
    Ok((ca_cert.der().clone(), cert.pem(), key.serialize_pem()))
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
        let (ca_pem, cert, key) = certificates().map_err(std::io::Error::other)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?;
        let (builder, client) = if mutual {
            let (client_ca, chain, client_key) =
                client_certificate().map_err(std::io::Error::other)?;
            let mut roots = rustls::RootCertStore::empty();
            roots.add(client_ca).map_err(std::io::Error::other)?;
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
