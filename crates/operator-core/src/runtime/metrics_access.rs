//! `/metrics` for whom the cluster allows, as controller-runtime's metrics filters do: over
//! HTTPS (a certificate the operator issues itself at start; the ServiceMonitor skips its
//! verification and presents Prometheus' ServiceAccount token), each scrape's bearer token
//! authenticated by a TokenReview and authorized by a SubjectAccessReview of `get` on the
//! non-resource URL `/metrics`. Answers are kept for a minute per token, so a scrape costs no
//! API call most of the time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use sha2::{Digest, Sha256};

use crate::admission::ServingCertificate;
use crate::admission::certificates::{Renewal, issue};

/// How long a review's answer is kept for its token.
pub const ANSWER_TTL: Duration = Duration::from_secs(60);
/// Tokens whose answers are kept at most; past it the oldest answers go first.
const KEPT_ANSWERS: usize = 256;

/// What the cluster said of one token.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Allowed,
    /// 401: no token, or one the API server does not know.
    Unauthenticated(String),
    /// 403: a known identity without `get` on `/metrics`.
    Forbidden(String),
}

/// Answers by the SHA-256 of their token (no token is kept), with when they were given.
type KeptAnswers = HashMap<[u8; 32], (Instant, Answer)>;

/// Reviews scrapes' tokens with the API server; clones share the kept answers.
#[derive(Clone)]
pub struct MetricsAccess {
    client: kube::Client,
    answers: Arc<Mutex<KeptAnswers>>,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAccess").finish_non_exhaustive()
    }
}

impl MetricsAccess {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            answers: Arc::default(),
        }
    }

    /// `router` with every request reviewed first.
    pub fn guard(self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self, reviewed))
    }

    async fn answer(&self, token: &str) -> Result<Answer, kube::Error> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((at, answer)) = self.kept().get(&key)
            && at.elapsed() < ANSWER_TTL
        {
            return Ok(answer.clone());
        }
        let answer = self.review(token).await?;
        let mut kept = self.kept();
        if kept.len() >= KEPT_ANSWERS {
            kept.retain(|_, (at, _)| at.elapsed() < ANSWER_TTL);
            if kept.len() >= KEPT_ANSWERS {
                kept.clear();
            }
        }
        kept.insert(key, (Instant::now(), answer.clone()));
        Ok(answer)
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, KeptAnswers> {
        self.answers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn review(&self, token: &str) -> Result<Answer, kube::Error> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?
            .status
            .unwrap_or_default();
        let user = match reviewed.user {
            Some(user) if reviewed.authenticated == Some(true) => user,
            _ => {
                let why = reviewed.error.unwrap_or_else(|| "unknown token".into());
                return Ok(Answer::Unauthenticated(why));
            }
        };
        let name = user.username.clone().unwrap_or_default();
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                uid: user.uid,
                groups: user.groups,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some("/metrics".into()),
                    verb: Some("get".into()),
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let decided = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await?
            .status
            .unwrap_or_default();
        Ok(if decided.allowed {
            Answer::Allowed
        } else {
            Answer::Forbidden(format!(
                "{name} may not get /metrics (bind it to a ClusterRole granting get on the non-resource URL /metrics)"
            ))
        })
    }
}

async fn reviewed(State(access): State<MetricsAccess>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let Some(token) = token else {
        return (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
    };
    match access.answer(&token).await {
        Ok(Answer::Allowed) => next.run(request).await,
        Ok(Answer::Unauthenticated(why)) => (
            StatusCode::UNAUTHORIZED,
            format!("unauthenticated: {why}\n"),
        )
            .into_response(),
        Ok(Answer::Forbidden(why)) => (StatusCode::FORBIDDEN, format!("{why}\n")).into_response(),
        Err(error) => {
            tracing::warn!(%error, "reviewing a scrape's token failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the token could not be reviewed\n",
            )
                .into_response()
        }
    }
}

/// A certificate for the metrics endpoint, issued at start (valid a year; a restart issues
/// another). Scrapers skip its verification, as for controller-runtime's: what guards
/// `/metrics` is the token review.
pub fn serving_certificate() -> Result<ServingCertificate, String> {
    let hosts = ["localhost".to_string()];
    let authority = "payments-engine operator metrics";
    let set = issue(
        None,
        Renewal::Authority,
        authority,
        &hosts,
        SystemTime::now(),
    )
    .map_err(|e| e.to_string())?;
    let certificate = ServingCertificate::issued_by_operator();
    certificate
        .install(
            (set.cert.into_bytes(), set.key.into_bytes()),
            "the metrics certificate",
            "its key",
        )
        .map_err(|e| e.to_string())?;
    Ok(certificate)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// Reviews against an API server that is not there: only kept answers and missing
    /// tokens can be decided.
    fn access() -> MetricsAccess {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap_or_default());
        let client = kube::Client::try_from(config).unwrap_or_else(|e| panic!("{e}"));
        MetricsAccess::new(client)
    }

    async fn status(access: &MetricsAccess, authorization: Option<&str>) -> StatusCode {
        let router = access
            .clone()
            .guard(Router::new().route("/metrics", get(|| async { "metrics" })));
        let mut request = Request::get("/metrics");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let request = request.body(Body::empty()).unwrap_or_default();
        match router.oneshot(request).await {
            Ok(response) => response.status(),
            Err(never) => match never {},
        }
    }

    fn keep(access: &MetricsAccess, token: &str, answer: Answer, age: Duration) {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        access.kept().insert(key, (at, answer));
    }

    #[tokio::test]
    async fn no_bearer_token_is_unauthorized_without_asking_the_api_server() {
        let access = access();
        assert_eq!(status(&access, None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            status(&access, Some("Basic dXNlcjpwdw==")).await,
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn a_kept_answer_decides_without_a_review_until_it_is_a_minute_old() {
        let access = access();
        keep(&access, "prometheus", Answer::Allowed, Duration::ZERO);
        keep(
            &access,
            "nobody",
            Answer::Forbidden("no".into()),
            Duration::ZERO,
        );
        keep(&access, "stale", Answer::Allowed, ANSWER_TTL);
        assert_eq!(
            status(&access, Some("Bearer prometheus")).await,
            StatusCode::OK
        );
        assert_eq!(
            status(&access, Some("Bearer nobody")).await,
            StatusCode::FORBIDDEN
        );
        // Reviewed again: the API server cannot be reached, so the scrape fails, and the
        // failure is not kept.
        assert_eq!(
            status(&access, Some("Bearer stale")).await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(access.kept().len(), 3);
    }
}
