//! Admission webhooks: bad input refused at the door, with every bad field named, before it
//! is stored. An operator lists what it admits ([`Admitted`]: its kinds, each with a
//! validation and optionally a defaulting function, both calling the operator's pure
//! `validate.rs`); [`server`] serves them over TLS on every replica, leader or not.
//!
//! The same rules still run in reconcile, so an object admitted while the webhook was down
//! is caught there (`Ready=False` with the reason). The webhook is the second line after
//! the CRD's schema and CEL rules, not the only one.
//!
//! Paths follow controller-runtime's convention, which the generated
//! Validating/MutatingWebhookConfigurations name:
//! `/validate-<group with dots as dashes>-<version>-<kind in lower case>` and `/mutate-…`.

pub mod certificates;
mod defaults;
mod metrics;
pub mod self_managed;
pub mod server;
mod tls;

use std::time::Duration;

use futures::future::BoxFuture;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::response::{StatusCause, StatusDetails};
use kube::core::{DynamicObject, Status};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crd_kind::{CrdKind, ServedResource};
use crate::error::FieldError;
use crate::validation::SpecRules;
pub use defaults::additions;
pub use metrics::WebhookMetrics;
pub use self_managed::{CertificateKeeper, SelfManagedCertificates, WebhookNames};
pub use server::{WebhookServer, WebhookServerError};
pub use tls::{CertificateError, ServingCertificate};

/// How long one review may take: well inside the API server's default webhook timeout
/// (10 s), so the caller gets our message rather than its own timeout.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(8);

/// The API server sends at most its own request limit (3 MiB) twice over (`object` and
/// `oldObject`), plus the review around it; controller-runtime allows 7 MiB for the same
/// reason. Larger bodies are refused before they are read.
pub const MAX_REVIEW_BYTES: usize = 7 * 1024 * 1024;

/// Validates one review. It may read the cluster (a ClearingAdapter's load) through the
/// client; most validations are pure.
pub type Validate = for<'a> fn(&'a Review, &'a kube::Client) -> BoxFuture<'a, Verdict>;

/// Returns the object with its defaults filled in (seed 001's `Default`). Only what it adds
/// is sent back as a patch: defaulting never removes or replaces what the user wrote.
pub type Defaulting = fn(&Value) -> Result<Value, FieldError>;

/// One kind an operator admits.
#[derive(Clone, Copy, Debug)]
pub struct Admitted {
    /// The kind, as its type declares it.
    pub resource: CrdKind,
    /// Subresources whose writes are also validated (`scale`, whose replicas a validation
    /// may refuse), beside the resource itself.
    pub subresources: &'static [&'static str],
    pub validate: Validate,
    pub default: Option<Defaulting>,
}

impl Admitted {
    /// The custom resource `K`: its spec checked by its rules ([`check_spec`]) and its
    /// serde defaults patched in ([`serde_defaults`]). An operator with more to check (an
    /// update against the old object, a subresource) sets those fields over this.
    pub const fn of<K>() -> Self
    where
        K: kube::CustomResourceExt + kube::core::object::HasSpec,
        K::Spec: SpecRules + DeserializeOwned + serde::Serialize,
    {
        Self {
            resource: CrdKind::of::<K>(),
            subresources: &[],
            validate: checked_spec::<K::Spec>,
            default: Some(serde_defaults::<K::Spec>),
        }
    }

    /// `/validate-payments-io-v1-paymentservice`.
    pub fn validate_path(&self) -> String {
        format!("/validate-{}", self.path_suffix())
    }

    /// `/mutate-payments-io-v1-paymentservice`.
    pub fn mutate_path(&self) -> String {
        format!("/mutate-{}", self.path_suffix())
    }

    fn path_suffix(&self) -> String {
        let resource = self.resource.resource();
        format!(
            "{}-{}-{}",
            resource.group.replace('.', "-"),
            resource.version,
            resource.kind.to_lowercase()
        )
    }
}

/// What a validation is asked about.
#[derive(Clone, Debug)]
pub struct Review {
    pub operation: Operation,
    pub name: String,
    pub namespace: Option<String>,
    /// `scale` for `kubectl scale`; the object is then an `autoscaling/v1` Scale.
    pub sub_resource: Option<String>,
    /// The object as it would be stored (`None` on delete).
    pub object: Option<Value>,
    /// The stored object an update replaces.
    pub old_object: Option<Value>,
}

impl Review {
    /// The new object's `.spec`, typed; a spec that does not fit is refused naming the field.
    pub fn spec<S: DeserializeOwned>(&self) -> Result<S, Verdict> {
        typed_spec(self.object.as_ref())
    }

    /// The replaced object's `.spec` on an update.
    pub fn old_spec<S: DeserializeOwned>(&self) -> Option<S> {
        self.old_object
            .as_ref()
            .and_then(|old| typed_spec(Some(old)).ok())
    }
}

/// A validation of the new object's spec by the operator's rules (`validate.rs`): their
/// errors and warnings; a spec that does not even parse is refused naming the field.
pub fn check_spec<S: SpecRules + DeserializeOwned>(review: &Review) -> Verdict {
    match review.spec::<S>() {
        Ok(spec) => Verdict::from_errors(spec.errors(&review.name), spec.warnings()),
        Err(verdict) => verdict,
    }
}

/// [`check_spec`] as a [`Validate`].
fn checked_spec<'a, S: SpecRules + DeserializeOwned>(
    review: &'a Review,
    _client: &'a kube::Client,
) -> BoxFuture<'a, Verdict> {
    Box::pin(std::future::ready(check_spec::<S>(review)))
}

fn typed_spec<S: DeserializeOwned>(object: Option<&Value>) -> Result<S, Verdict> {
    let spec = object
        .and_then(|o| o.get("spec"))
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    serde_path_to_error::deserialize(spec).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "spec".to_string()
        } else {
            format!("spec.{path}")
        };
        Verdict::deny(vec![FieldError::new(field, e.into_inner().to_string())])
    })
}

/// A validation's answer: the fields to change (none: allowed) and warnings for a
/// valid-but-risky spec, shown by `kubectl` either way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub errors: Vec<FieldError>,
    pub warnings: Vec<String>,
}

impl Verdict {
    pub fn allow() -> Self {
        Self::default()
    }

    pub fn deny(errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            warnings: Vec::new(),
        }
    }

    /// Allowed with `warnings`, or denied with `errors`: what a pure validation returns.
    pub fn from_errors(errors: Vec<FieldError>, warnings: Vec<String>) -> Self {
        Self { errors, warnings }
    }
}

/// Answers one ConversionReview body, as JSON: every object converted, or a failure that
/// names the object and why. A body that cannot be read gets a failure, never a panic.
pub fn convert_review(served: &[ServedResource], body: &[u8]) -> Value {
    use kube::core::conversion::{ConversionRequest, ConversionResponse, ConversionReview};
    let failure = |message: String| Status::failure(&message, "Invalid").with_code(422);
    let review = match serde_json::from_slice::<ConversionReview>(body) {
        Ok(review) => review,
        Err(e) => {
            return serde_json::to_value(
                ConversionResponse::invalid(failure(format!(
                    "cannot read the ConversionReview: {e}"
                )))
                .into_review(),
            )
            .unwrap_or(Value::Null);
        }
    };
    let response = match ConversionRequest::from_review(review) {
        Err(_) => {
            ConversionResponse::invalid(failure("the ConversionReview has no request".into()))
        }
        Ok(request) => {
            let desired = request.desired_api_version.clone();
            let objects = request.objects.clone();
            let response = ConversionResponse::for_request(request);
            let mut done = Vec::with_capacity(objects.len());
            let mut failed = None;
            for object in objects {
                let name = object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let group = object["apiVersion"]
                    .as_str()
                    .and_then(|v| v.split_once('/'))
                    .map_or("", |(g, _)| g);
                let kind = object["kind"].as_str().unwrap_or_default().to_string();
                let group = group.to_string();
                let Some(convert) = served
                    .iter()
                    .find(|s| s.resource.group() == group && s.resource.kind() == kind)
                    .and_then(|s| s.convert)
                else {
                    failed = Some(format!("this webhook converts no {group} {kind}"));
                    break;
                };
                match convert(object, &desired) {
                    Ok(object) => done.push(object),
                    Err(why) => {
                        failed = Some(format!("{kind} {name:?}: {why}"));
                        break;
                    }
                }
            }
            match failed {
                Some(why) => response.failure(failure(why)),
                None => response.success(done),
            }
        }
    };
    serde_json::to_value(response.into_review()).unwrap_or(Value::Null)
}

/// Which of an [`Admitted`]'s two webhooks a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Validate,
    Mutate,
}

/// Answers one AdmissionReview body for `admitted`, as JSON. Whatever the body holds, the
/// answer is an AdmissionReview: a body that cannot be read, or a review of something else,
/// is denied with a message saying why.
pub async fn answer(admitted: &Admitted, hook: Hook, body: &[u8], client: &kube::Client) -> Value {
    let review = review_answer(admitted, hook, body, client).await;
    let mut json = serde_json::to_value(&review).unwrap_or(Value::Null);
    // The API server reads `patch` as base64 (Go's []byte); kube writes a list of numbers.
    if let Some(patch) = review.response.and_then(|r| r.patch) {
        json["response"]["patch"] =
            serde_json::to_value(k8s_openapi::ByteString(patch)).unwrap_or(Value::Null);
    }
    json
}

async fn review_answer(
    admitted: &Admitted,
    hook: Hook,
    body: &[u8],
    client: &kube::Client,
) -> AdmissionReview<DynamicObject> {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(e) => {
            return AdmissionResponse::invalid(format!("cannot read the AdmissionReview: {e}"))
                .into_review();
        }
    };
    if review.types.api_version != "admission.k8s.io/v1" || review.types.kind != "AdmissionReview" {
        return AdmissionResponse::invalid(format!(
            "expected an admission.k8s.io/v1 AdmissionReview, got {:?} {:?}",
            review.types.api_version, review.types.kind
        ))
        .into_review();
    }
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(_) => {
            return AdmissionResponse::invalid("the AdmissionReview has no request").into_review();
        }
    };
    let response = AdmissionResponse::from(&request);
    let resource = &request.resource;
    let sub_resource = request.sub_resource.as_deref().filter(|s| !s.is_empty());
    let admits = admitted.resource.resource();
    if resource.group != admits.group
        || resource.version != admits.version
        || resource.resource != admits.plural
        || sub_resource.is_some_and(|s| !admitted.subresources.contains(&s))
    {
        let asked = match sub_resource {
            Some(s) => format!("{}/{}", resource.resource, s),
            None => resource.resource.clone(),
        };
        return response
            .deny(format!(
                "this webhook admits {} ({}), not {}/{} {asked}: check the webhook configuration's rules",
                admits.plural,
                admits.api_version,
                resource.group,
                resource.version,
            ))
            .into_review();
    }
    let review = Review {
        operation: request.operation.clone(),
        name: request.name.clone(),
        namespace: request.namespace.clone(),
        sub_resource: sub_resource.map(str::to_string),
        object: request
            .object
            .as_ref()
            .and_then(|o| serde_json::to_value(o).ok()),
        old_object: request
            .old_object
            .as_ref()
            .and_then(|o| serde_json::to_value(o).ok()),
    };
    match hook {
        Hook::Validate => validated(admitted, &review, client, response).await,
        Hook::Mutate => defaulted(admitted, &review, response),
    }
    .into_review()
}

async fn validated(
    admitted: &Admitted,
    review: &Review,
    client: &kube::Client,
    response: AdmissionResponse,
) -> AdmissionResponse {
    if matches!(review.operation, Operation::Delete | Operation::Connect) {
        return response;
    }
    let verdict =
        match tokio::time::timeout(REVIEW_TIMEOUT, (admitted.validate)(review, client)).await {
            Ok(verdict) => verdict,
            Err(_) => {
                return response.deny(format!(
                    "the validation did not finish within {REVIEW_TIMEOUT:?}; try again"
                ));
            }
        };
    let mut response = response;
    if !verdict.warnings.is_empty() {
        response.warnings = Some(verdict.warnings);
    }
    if verdict.errors.is_empty() {
        return response;
    }
    let message = format!(
        "{} {:?} is invalid: {}",
        admitted.resource.kind(),
        review.name,
        crate::error::SpecErrors(verdict.errors.clone())
    );
    let mut response = response.deny(&message);
    response.result = Status::failure(&message, "Invalid")
        .with_code(422)
        .with_details(StatusDetails {
            name: review.name.clone(),
            group: admitted.resource.group(),
            kind: admitted.resource.kind(),
            causes: verdict
                .errors
                .iter()
                .map(|e| StatusCause {
                    reason: "FieldValueInvalid".to_string(),
                    message: e.message.clone(),
                    field: e.field.clone(),
                })
                .collect(),
            uid: String::new(),
            retry_after_seconds: 0,
        });
    response
}

fn defaulted(
    admitted: &Admitted,
    review: &Review,
    response: AdmissionResponse,
) -> AdmissionResponse {
    let (Some(default), Some(object), None) =
        (admitted.default, &review.object, &review.sub_resource)
    else {
        return response;
    };
    if !matches!(review.operation, Operation::Create | Operation::Update) {
        return response;
    }
    // An object that does not parse gets no defaults; the validating webhook refuses it,
    // naming the field.
    let Ok(filled) = default(object) else {
        return response;
    };
    let patch = additions(object, &filled);
    if patch.0.is_empty() {
        return response;
    }
    match response.clone().with_patch(patch) {
        Ok(patched) => patched,
        Err(e) => response.deny(format!("cannot write the defaulting patch: {e}")),
    }
}

/// Seed 001's `Default` for any spec type: the object with its `.spec` read into `S` and
/// written back, so every serde default of `S` is filled in.
pub fn serde_defaults<S>(object: &Value) -> Result<Value, FieldError>
where
    S: DeserializeOwned + serde::Serialize,
{
    fill_spec::<S>(object, |_| {})
}

/// [`serde_defaults`], then `fill` sets what an operator defaults beyond serde's defaults.
pub fn fill_spec<S>(object: &Value, fill: impl FnOnce(&mut S)) -> Result<Value, FieldError>
where
    S: DeserializeOwned + serde::Serialize,
{
    let mut spec: S = typed_spec(Some(object)).map_err(|v| {
        v.errors
            .into_iter()
            .next()
            .unwrap_or_else(|| FieldError::new("spec", "cannot be read"))
    })?;
    fill(&mut spec);
    let mut filled = object.clone();
    filled["spec"] = serde_json::to_value(spec)
        .map_err(|e| FieldError::new("spec", format!("cannot be written back: {e}")))?;
    Ok(filled)
}

#[cfg(test)]
mod tests;
