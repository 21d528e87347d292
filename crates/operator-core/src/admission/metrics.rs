//! What the webhooks answered. With `failurePolicy: Fail`, a webhook that cannot answer
//! blocks every write of its kinds, so its requests and latency are exported under
//! controller-runtime's names (`controller_runtime_webhook_*`), and every answer's outcome
//! under `operator_admission_reviews_total`: `error` there means the API server sent what the
//! webhook cannot admit (a configuration that does not match the operator), never bad input.
//! The `webhook` label is the route's path: one series per route the operator serves.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde_json::Value;

use crate::metrics::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    webhook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    webhook: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    webhook: String,
    result: String,
}

/// How one review was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Admitted as sent.
    Allowed,
    /// Admitted with defaults added.
    Patched,
    /// Refused: the object breaks a rule (the user's to fix).
    Denied,
    /// Every object converted.
    Converted,
    /// Refused without judging the object: an unreadable or misrouted review, a validation
    /// that ran out of time, or an object that cannot be converted.
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Patched => "patched",
            Self::Denied => "denied",
            Self::Converted => "converted",
            Self::Error => "error",
        }
    }

    /// The outcome of an answered AdmissionReview: a denial for a broken rule carries reason
    /// `Invalid` (see `validated`); any other denial is an error.
    pub(crate) fn of_admission(review: &Value) -> Self {
        let response = &review["response"];
        match response["allowed"].as_bool() {
            Some(true) if response.get("patch").is_some_and(|p| !p.is_null()) => Self::Patched,
            Some(true) => Self::Allowed,
            _ if response["status"]["reason"] == "Invalid" => Self::Denied,
            _ => Self::Error,
        }
    }

    /// The outcome of an answered ConversionReview.
    pub(crate) fn of_conversion(review: &Value) -> Self {
        if review["response"]["result"]["status"] == "Success" {
            Self::Converted
        } else {
            Self::Error
        }
    }
}

/// The webhook server's metrics. `default()` records into families no registry exports
/// (tests, benchmarks); [`WebhookMetrics::register`] into the operator's.
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    requests: Family<CodeLabels, Counter>,
    latency: Family<WebhookLabels, Histogram>,
    reviews: Family<OutcomeLabels, Counter>,
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            // 1 ms to about 8 s: the review timeout is 8 s.
            latency: Family::new_with_constructor(
                (|| Histogram::new(exponential_buckets(0.001, 2.0, 14))) as fn() -> Histogram,
            ),
            reviews: Family::default(),
        }
    }
}

impl WebhookMetrics {
    /// Families registered in `metrics`, so `/metrics` exports them.
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self::default();
        metrics.register(
            "controller_runtime_webhook_requests",
            "Total number of admission and conversion requests per webhook and HTTP status code",
            this.requests.clone(),
        );
        metrics.register(
            "controller_runtime_webhook_latency_seconds",
            "How long each webhook took to answer",
            this.latency.clone(),
        );
        metrics.register(
            "operator_admission_reviews",
            "Answered reviews per webhook and result (allowed, patched, denied, converted, error)",
            this.reviews.clone(),
        );
        this
    }

    /// One HTTP request to `webhook`, answered with `code` after `elapsed`.
    pub(crate) fn request(&self, webhook: &str, code: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&CodeLabels {
                webhook: webhook.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&WebhookLabels {
                webhook: webhook.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// One review `webhook` answered.
    pub(crate) fn review(&self, webhook: &str, outcome: Outcome) {
        self.reviews
            .get_or_create(&OutcomeLabels {
                webhook: webhook.to_string(),
                result: outcome.as_str().to_string(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use crate::descriptor::Converged;
    use serde_json::json;

    use super::Outcome;
    use crate::admission::convert_review;
    use crate::crd_kind::ServedResource;

    #[derive(
        kube::CustomResource,
        schemars::JsonSchema,
        serde::Deserialize,
        serde::Serialize,
        Clone,
        Debug,
    )]
    #[kube(group = "example.io", version = "v1", kind = "Widget", namespaced)]
    struct WidgetSpec {
        size: i64,
    }

    const WIDGETS: &[ServedResource] = &[ServedResource {
        convert: Some(|mut object, version| {
            if object["spec"]["size"].as_i64().is_some_and(|s| s < 0) {
                return Err("spec.size is negative".into());
            }
            object["apiVersion"] = json!(version);
            Ok(object)
        }),
        ..ServedResource::of::<Widget>(Converged::Ready)
    }];

    fn conversion(size: i64) -> Vec<u8> {
        let review = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "request": {"uid": "1", "desiredAPIVersion": "example.io/v2", "objects": [
                {"apiVersion": "example.io/v1", "kind": "Widget",
                 "metadata": {"name": "w"}, "spec": {"size": size}}]},
        });
        serde_json::to_vec(&review).unwrap_or_default()
    }

    #[test]
    fn a_conversion_is_converted_or_an_error() {
        let of = |body: &[u8]| Outcome::of_conversion(&convert_review(WIDGETS, body));
        assert_eq!(of(&conversion(3)), Outcome::Converted);
        assert_eq!(of(&conversion(-1)), Outcome::Error);
        assert_eq!(of(b"{not json"), Outcome::Error);
    }

    #[test]
    fn only_a_broken_rule_is_a_denial() {
        let answered =
            |response: serde_json::Value| Outcome::of_admission(&json!({"response": response}));
        assert_eq!(answered(json!({"allowed": true})), Outcome::Allowed);
        assert_eq!(
            answered(json!({"allowed": true, "patch": "W10=", "patchType": "JSONPatch"})),
            Outcome::Patched
        );
        assert_eq!(
            answered(json!({"allowed": false, "status": {"reason": "Invalid", "code": 422}})),
            Outcome::Denied
        );
        assert_eq!(
            answered(json!({"allowed": false, "status": {"reason": "InvalidRequest"}})),
            Outcome::Error
        );
        assert_eq!(Outcome::of_admission(&json!(null)), Outcome::Error);
    }
}
