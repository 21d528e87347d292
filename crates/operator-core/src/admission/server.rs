//! The webhook server: HTTPS on `--webhook-bind-address` (`:9443`), on every replica, with
//! the admin server's connection limits, a body limit, a per-review timeout, and the
//! certificate re-read every [`CERTIFICATE_POLL`] (files) or kept by the operator itself
//! ([`CertificateKeeper`]). While no valid certificate is loaded,
//! `/readyz` fails with the reason, so the Service sends the API server to no replica that
//! cannot answer. Every request is counted ([`WebhookMetrics`]).

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::watch;

use super::metrics::{Outcome, WebhookMetrics};
use super::self_managed::CertificateKeeper;
use super::{Admitted, Hook, MAX_REVIEW_BYTES, ServingCertificate, answer, convert_review};
use crate::crd_kind::ServedResource;
use crate::readiness::Readiness;
use crate::serving::serve_upgraded;

/// How often the certificate files are re-read. The kubelet refreshes a mounted Secret
/// within about a minute of cert-manager renewing it; well before the old one expires.
pub const CERTIFICATE_POLL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum WebhookServerError {
    #[error("cannot listen for admission reviews on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("the webhook server stopped: {0}")]
    Serve(#[from] std::io::Error),
}

/// The admission webhooks of one operator.
#[derive(Clone)]
pub struct WebhookServer {
    admitted: &'static [Admitted],
    served: &'static [ServedResource],
    client: kube::Client,
    certificate: ServingCertificate,
    poll: Duration,
    /// Issues and renews the certificate, instead of reading it from files.
    keeper: Option<(CertificateKeeper, watch::Receiver<bool>)>,
    metrics: WebhookMetrics,
}

impl std::fmt::Debug for WebhookServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookServer")
            .field("admitted", &self.admitted.len())
            .field("served", &self.served.len())
            .field("certificate", &self.certificate.dir())
            .finish_non_exhaustive()
    }
}

impl WebhookServer {
    pub fn new(
        admitted: &'static [Admitted],
        client: kube::Client,
        certificate: ServingCertificate,
    ) -> Self {
        Self {
            admitted,
            served: &[],
            client,
            certificate,
            poll: CERTIFICATE_POLL,
            keeper: None,
            metrics: WebhookMetrics::default(),
        }
    }

    /// Records requests and outcomes in `metrics` (the operator's registry).
    #[must_use]
    pub fn recording(mut self, metrics: WebhookMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Also converts those of `served` that serve several versions, on `/convert`.
    #[must_use]
    pub fn converting(mut self, served: &'static [ServedResource]) -> Self {
        self.served = served;
        self
    }

    /// Serves the certificate `keeper` issues and renews (writing its CA into the webhook
    /// configurations while `leading`), not files.
    #[must_use]
    pub fn keeping(mut self, keeper: CertificateKeeper, leading: watch::Receiver<bool>) -> Self {
        self.keeper = Some((keeper, leading));
        self
    }

    /// Re-reads the certificate every `poll` instead of [`CERTIFICATE_POLL`].
    #[must_use]
    pub fn polling_every(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The routes: a validating and a mutating webhook per admitted kind. An operator of one
    /// kind also answers on `/validate` and `/mutate` (seed 002's webhook path).
    pub fn router(&self) -> Router {
        let mut router = Router::new();
        let single = self.admitted.len() == 1;
        for admitted in self.admitted {
            for hook in [Hook::Validate, Hook::Mutate] {
                let (path, short) = match hook {
                    Hook::Validate => (admitted.validate_path(), "/validate"),
                    Hook::Mutate => (admitted.mutate_path(), "/mutate"),
                };
                let paths = [Some(path), single.then(|| short.to_string())];
                for path in paths.into_iter().flatten() {
                    let client = self.client.clone();
                    router = self.route(router, &path, Outcome::of_admission, move |body| {
                        let client = client.clone();
                        async move { answer(admitted, hook, &body, &client).await }
                    });
                }
            }
        }
        if self.served.iter().any(|s| s.convert.is_some()) {
            let served = self.served;
            router = self.route(router, "/convert", Outcome::of_conversion, move |body| {
                std::future::ready(convert_review(served, &body))
            });
        }
        router.layer(DefaultBodyLimit::max(MAX_REVIEW_BYTES))
    }

    /// `router` with `path` answered by `review`, counted in the metrics: a body over the
    /// limit is answered (413) and counted without being read.
    fn route<F, Answered>(
        &self,
        router: Router,
        path: &str,
        outcome: fn(&Value) -> Outcome,
        review: F,
    ) -> Router
    where
        F: Fn(Bytes) -> Answered + Clone + Send + Sync + 'static,
        Answered: Future<Output = Value> + Send,
    {
        let (webhook, metrics) = (path.to_string(), self.metrics.clone());
        router.route(
            path,
            post(move |body: Result<Bytes, BytesRejection>| async move {
                let started = Instant::now();
                let response = match body {
                    Ok(body) => {
                        let answered = review(body).await;
                        metrics.review(&webhook, outcome(&answered));
                        json(&answered)
                    }
                    Err(rejection) => rejection.into_response(),
                };
                metrics.request(&webhook, response.status().as_u16(), started.elapsed());
                response
            }),
        )
    }

    /// Listens on `address` and serves until `stop`. See [`Self::serve`].
    pub async fn run(
        self,
        address: SocketAddr,
        readiness: Readiness,
        stop: watch::Receiver<bool>,
    ) -> Result<(), WebhookServerError> {
        let listener = match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => listener,
            Err(source) => {
                let error = WebhookServerError::Bind { address, source };
                readiness.set_problem(Some(error.to_string()));
                return Err(error);
            }
        };
        tracing::info!(address = %listener.local_addr().unwrap_or(address), "admission webhooks listening");
        self.serve(listener, readiness, stop).await
    }

    /// Serves on `listener` until `stop`, reloading the certificate as it changes and
    /// reporting a missing or bad one on `readiness`.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        readiness: Readiness,
        stop: watch::Receiver<bool>,
    ) -> Result<(), WebhookServerError> {
        let tls = tokio_rustls::TlsAcceptor::from(self.certificate.server_config()?);
        let (certificate, poll) = (self.certificate.clone(), self.poll);
        let watcher = match self.keeper.clone() {
            Some((keeper, leading)) => {
                tokio::spawn(keeper.keep(certificate, readiness.clone(), leading))
            }
            None => {
                // Loaded before the first connection is accepted, then re-read as it changes.
                let check = move |certificate: &ServingCertificate| match certificate.reload() {
                    Ok(true) => {
                        tracing::info!(dir = ?certificate.dir(), "webhook certificate loaded");
                        readiness.set_problem(None);
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::error!(%error, "webhook certificate unusable; admission reviews fail until it is fixed");
                        readiness.set_problem(Some(format!("webhook certificate: {error}")));
                    }
                };
                check(&certificate);
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(poll).await;
                        check(&certificate);
                    }
                })
            }
        };
        let served = serve_upgraded(listener, self.router(), stop, move |stream| {
            let tls = tls.clone();
            async move { tls.accept(stream).await.ok() }
        })
        .await;
        watcher.abort();
        Ok(served?)
    }
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
