//! client-go's `rest_client_*` series: every request the operator makes to the API server,
//! by status code and method, and how long the server took to answer (to the response's
//! headers: a watch counts until it starts streaming). A layer on the client's HTTP stack, so
//! nothing that talks to the API server can bypass it.

use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    code: String,
    method: String,
    host: String,
}

/// client-go names the method `verb` on the duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: String,
    host: String,
}

/// client-go's buckets, 5 ms to 60 s.
fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0,
    ])
}

#[derive(Clone, Debug)]
pub(super) struct RestClientMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
}

impl RestClientMetrics {
    pub(super) fn new() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        }
    }

    pub(super) fn register(&self, metrics: &Metrics) {
        metrics.register(
            "rest_client_requests",
            "Number of HTTP requests, partitioned by status code, method, and host.",
            self.requests.clone(),
        );
        metrics.register(
            "rest_client_request_duration_seconds",
            "Request latency in seconds. Broken down by verb, and host.",
            self.latency.clone(),
        );
    }

    /// One answered request; `code` is `<error>` when no response came (client-go's word).
    fn record(&self, host: &str, method: &str, code: &str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                code: code.to_string(),
                method: method.to_string(),
                host: host.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                verb: method.to_string(),
                host: host.to_string(),
            })
            .observe(seconds);
    }
}

/// Counts and times every request of a `kube::Client` built with it
/// (`ClientBuilder::with_layer`). `host` is the API server's `host:port`: one value per
/// process, so the label stays bounded.
#[derive(Clone, Debug)]
pub struct RestClientLayer {
    metrics: Metrics,
    host: String,
}

impl RestClientLayer {
    pub fn new(metrics: &Metrics, cluster_url: &http::Uri) -> Self {
        Self {
            metrics: metrics.clone(),
            host: cluster_url
                .authority()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default(),
        }
    }
}

impl<S> tower::Layer<S> for RestClientLayer {
    type Service = RecordedRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecordedRequests {
            inner,
            layer: self.clone(),
        }
    }
}

/// The client's HTTP service with every request recorded.
#[derive(Clone, Debug)]
pub struct RecordedRequests<S> {
    inner: S,
    layer: RestClientLayer,
}

impl<S, B, R> tower::Service<http::Request<B>> for RecordedRequests<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.method().as_str().to_string();
        let layer = self.layer.clone();
        let start = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            let code = match &answer {
                Ok(response) => response.status().as_str().to_string(),
                Err(_) => "<error>".to_string(),
            };
            let seconds = start.elapsed().as_secs_f64();
            layer
                .metrics
                .rest_client
                .record(&layer.host, &method, &code, seconds);
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer as _, ServiceExt as _};

    #[tokio::test]
    async fn every_request_is_counted_by_code_and_method_and_timed_by_verb() {
        let metrics = Metrics::new();
        let url: http::Uri = "https://127.0.0.1:6443".parse().expect("a URL");
        let layer = RestClientLayer::new(&metrics, &url);
        let server = tower::service_fn(|request: http::Request<()>| async move {
            match request.uri().path() {
                "/fails" => Err("connection refused"),
                "/missing" => Ok(http::Response::builder()
                    .status(404)
                    .body(())
                    .expect("a response")),
                _ => Ok(http::Response::new(())),
            }
        });
        let client = layer.layer(server);
        for (method, path) in [
            ("GET", "/ok"),
            ("GET", "/missing"),
            ("PATCH", "/ok"),
            ("GET", "/fails"),
        ] {
            let request = http::Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .expect("a request");
            let _ = client.clone().oneshot(request).await;
        }
        let text = metrics.encode();
        for expected in [
            r#"rest_client_requests_total{code="200",method="GET",host="127.0.0.1:6443"} 1"#,
            r#"rest_client_requests_total{code="404",method="GET",host="127.0.0.1:6443"} 1"#,
            r#"rest_client_requests_total{code="200",method="PATCH",host="127.0.0.1:6443"} 1"#,
            r#"rest_client_requests_total{code="<error>",method="GET",host="127.0.0.1:6443"} 1"#,
            r#"rest_client_request_duration_seconds_count{verb="GET",host="127.0.0.1:6443"} 3"#,
            r#"rest_client_request_duration_seconds_count{verb="PATCH",host="127.0.0.1:6443"} 1"#,
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }
}
