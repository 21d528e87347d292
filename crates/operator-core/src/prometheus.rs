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
use http_body_util::Empty;
use rustls::ClientConfig;
use serde::Deserialize;

use crate::http_client;

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
            http_client::tls_config(Some(file))?;
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
        let mut request = http::Request::get(query_path(&base, promql))
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
        let tls = || {
            self.tls
                .get_or_init(|| http_client::tls_config(self.settings.ca_file.as_deref()))
                .clone()
        };
        let (status, body) = http_client::exchange(&base, request, tls, MAX_ANSWER)
            .await
            .map_err(unreachable)?;
        answer(status, &body)
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

#[cfg(test)]
mod tests;
