//! Reading Prometheus: its instant-query API (`GET /api/v1/query`) over http or https, with an
//! optional bearer token (re-read for every query, so a rotated token is used at once) and CA,
//! each query bounded by a timeout. Operators judge the workloads they run by its answers;
//! [`MetricsQuery`] is the seam tests replace, [`Prometheus`] the real client.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde::Deserialize;
use tokio::net::TcpStream;

/// Where Prometheus is and how to reach it (`operator.prometheus` in the config file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrometheusSettings {
    /// Its base URL, `http://` or `https://` (e.g.
    /// `http://prometheus-operated.monitoring.svc:9090`).
    pub url: String,
    /// A file holding a bearer token sent with every query (a projected ServiceAccount token).
    pub bearer_token_file: Option<PathBuf>,
    /// PEM CA bundle for an https URL; the system's roots when not set.
    pub ca_file: Option<PathBuf>,
    /// How long one query may take.
    pub timeout: Duration,
}

impl PrometheusSettings {
    /// The default time one query may take.
    pub const TIMEOUT: Duration = Duration::from_secs(5);

    /// Checks the URL and reads the CA bundle, as the config is resolved: a setting that
    /// cannot work stops the operator at start, naming it, rather than failing every query.
    pub fn check(&self) -> Result<(), String> {
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e| format!("{:?} is not a URL: {e}", self.url))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "{:?} is not an http:// or https:// URL with a host",
                self.url
            ));
        }
        if let Some(file) = &self.ca_file {
            roots(Some(file))?;
        }
        Ok(())
    }
}

/// Why a query has no answer, in words that say where to look.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("Prometheus at {url} could not be reached: {why}")]
    Unreachable { url: String, why: String },
    #[error("Prometheus gave no answer within {0:?}")]
    Timeout(Duration),
    #[error("Prometheus answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("Prometheus refused the query ({kind}): {message}")]
    Refused { kind: String, message: String },
    #[error("Prometheus' answer could not be read: {0}")]
    Unreadable(String),
}

/// One series of a query's answer: its labels and its value now.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Answers PromQL instant queries.
pub trait MetricsQuery: Send + Sync + 'static {
    fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Vec<Sample>, QueryError>>;
}

/// The real Prometheus, over http or https.
#[derive(Debug)]
pub struct Prometheus {
    settings: PrometheusSettings,
    /// Built on the first https query.
    tls: OnceLock<Result<Arc<ClientConfig>, String>>,
}

impl Prometheus {
    pub fn new(settings: PrometheusSettings) -> Self {
        Self {
            settings,
            tls: OnceLock::new(),
        }
    }

    async fn get(&self, promql: &str) -> Result<Vec<Sample>, QueryError> {
        let url = &self.settings.url;
        let unreachable = |why: String| QueryError::Unreachable {
            url: url.clone(),
            why,
        };
        let base: http::Uri = url.parse().map_err(|e| unreachable(format!("{e}")))?;
        let host = base.host().ok_or_else(|| unreachable("no host".into()))?;
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let https = base.scheme_str() == Some("https");
        let port = base.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((bare_host, port))
            .await
            .map_err(|e| unreachable(format!("connecting to {host}:{port}: {e}")))?;
        let mut request = http::Request::get(query_path(&base, promql))
            .header(
                http::header::HOST,
                base.authority().map_or(host, |a| a.as_str()),
            )
            .header(http::header::USER_AGENT, "payments-engine-operator")
            .header(http::header::ACCEPT, "application/json");
        if let Some(file) = &self.settings.bearer_token_file {
            let token = std::fs::read_to_string(file).map_err(|e| {
                unreachable(format!("reading the bearer token {}: {e}", file.display()))
            })?;
            request = request.header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.trim()),
            );
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| unreachable(format!("building the request: {e}")))?;
        let response = if https {
            let config = self
                .tls
                .get_or_init(|| tls_config(self.settings.ca_file.as_ref()))
                .clone()
                .map_err(unreachable)?;
            let name = ServerName::try_from(bare_host.to_string())
                .map_err(|e| unreachable(format!("{host:?} is not a TLS server name: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| unreachable(format!("TLS with {host}:{port}: {e}")))?;
            send(TokioIo::new(tls), request).await
        } else {
            send(TokioIo::new(tcp), request).await
        }
        .map_err(unreachable)?;
        answer(response.0, &response.1)
    }
}

impl MetricsQuery for Prometheus {
    fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Vec<Sample>, QueryError>> {
        Box::pin(async move {
            let timeout = self.settings.timeout;
            tokio::time::timeout(timeout, self.get(promql))
                .await
                .unwrap_or(Err(QueryError::Timeout(timeout)))
        })
    }
}

/// An answer larger than this is not read: a query of one adapter's series is a few KiB.
const MAX_ANSWER: usize = 1 << 20;

async fn send<I>(io: I, request: http::Request<Empty<Bytes>>) -> Result<(u16, Bytes), String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("GET /api/v1/query: {e}"))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
    .await;
    driver.abort();
    result
}

/// `<base path>/api/v1/query?query=<promql>`.
fn query_path(base: &http::Uri, promql: &str) -> String {
    let prefix = base.path().trim_end_matches('/');
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", promql)
        .finish();
    format!("{prefix}/api/v1/query?{query}")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status: String,
    data: Option<AnswerData>,
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerData {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// Reads an answer of the query API: a vector (one sample a series) or a scalar.
fn answer(status: u16, body: &[u8]) -> Result<Vec<Sample>, QueryError> {
    let parsed: Answer = match serde_json::from_slice(body) {
        Ok(parsed) => parsed,
        Err(_) if status != 200 => {
            let text = String::from_utf8_lossy(&body[..body.len().min(256)]);
            return Err(QueryError::Http {
                status,
                body: text.trim().to_string(),
            });
        }
        Err(e) => return Err(QueryError::Unreadable(e.to_string())),
    };
    if parsed.status != "success" {
        return Err(QueryError::Refused {
            kind: parsed.error_type.unwrap_or_default(),
            message: parsed.error.unwrap_or_default(),
        });
    }
    let data = parsed
        .data
        .ok_or_else(|| QueryError::Unreadable("no data".into()))?;
    let number = |text: &str| {
        text.parse::<f64>()
            .map_err(|_| QueryError::Unreadable(format!("{text:?} is not a number")))
    };
    match data.result_type.as_str() {
        "vector" => serde_json::from_value::<Vec<VectorSample>>(data.result)
            .map_err(|e| QueryError::Unreadable(e.to_string()))?
            .into_iter()
            .map(|s| {
                Ok(Sample {
                    value: number(&s.value.1)?,
                    labels: s.metric,
                })
            })
            .collect(),
        "scalar" => {
            let (_, value): (f64, String) = serde_json::from_value(data.result)
                .map_err(|e| QueryError::Unreadable(e.to_string()))?;
            Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: number(&value)?,
            }])
        }
        other => Err(QueryError::Unreadable(format!(
            "a {other} where an instant vector was expected"
        ))),
    }
}

fn roots(ca_file: Option<&PathBuf>) -> Result<RootCertStore, String> {
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

fn tls_config(ca_file: Option<&PathBuf>) -> Result<Arc<ClientConfig>, String> {
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots(ca_file)?)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;
