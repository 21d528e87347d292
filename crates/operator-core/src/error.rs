//! The one error type reconciles return. It separates what the user must fix in the spec
//! (reported on status and as a Warning event, retried only at the resync interval) from
//! transient failures (retried with per-object exponential backoff).

use std::fmt;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::conditions::{ConditionStatus, Observed, Reason, set_condition};

/// One thing wrong with a spec: where, and what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.riskLimits.maxPositionSize`.
    pub field: String,
    /// What is wrong and what is allowed, e.g. `must be between 1000 and 10000000, got 500`.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every field error found in one spec, so a user fixes them all in one edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<FieldError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

/// What the controller needs to know of any reconcile error, so an operator can bring its own
/// `thiserror` enum: whether only a change to the spec fixes it (no fast retry, reported on
/// status and as a Warning each time) or it is transient (backoff; one Warning when it
/// starts), and a bounded CamelCase reason for conditions, events and the
/// `operator_reconcile_errors_by_reason_total` series.
pub trait ReconcileError: std::error::Error + Send + Sync + 'static {
    fn is_spec_error(&self) -> bool;
    fn reason(&self) -> Reason;
}

impl ReconcileError for Error {
    fn is_spec_error(&self) -> bool {
        Error::is_spec_error(self)
    }
    fn reason(&self) -> Reason {
        Error::reason(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec cannot be realised as written; the message names each field to change.
    #[error("invalid spec: {0}")]
    InvalidSpec(SpecErrors),

    /// The API server refused a child built from the spec: a value Kubernetes does not accept
    /// (400/422), or a write the operator is not allowed (403).
    #[error("the API server rejected {kind} {name}: {message}")]
    ChildRejected {
        kind: String,
        name: String,
        message: String,
    },

    /// An object with a child's name exists and this owner does not control it: it is left as
    /// it is (an operator never takes over what it did not create).
    #[error(
        "{kind} {name} already exists and {holder}; it is left untouched: rename this resource, or rename or remove the existing {kind}"
    )]
    ChildNameConflict {
        kind: String,
        name: String,
        holder: String,
    },

    /// Some children could not be applied this pass (each named); the others were.
    #[error("{}", describe_refused(.0))]
    ChildrenRefused(Vec<RefusedChild>),

    /// A request to the API server failed; retried with backoff.
    #[error("Kubernetes API request failed: {}", describe_kube(.0))]
    Kube(#[source] kube::Error),

    /// Work that must happen before deletion failed; the finalizer stays and it is retried.
    #[error("cleanup before deletion failed: {0}")]
    Cleanup(#[source] Box<Error>),

    /// A reconcile used a child kind its operator did not declare (a bug in the operator).
    #[error("child kind {0} was not declared with ChildKinds::builder")]
    UndeclaredChildKind(String),

    /// An object the API server returned lacks a field it always sets.
    #[error("object is missing {0}")]
    MissingField(&'static str),

    /// A desired object could not be serialized (a bug in a builder, not user input).
    #[error("could not serialize {what}: {source}")]
    Serialization {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A child a reconcile pass could not apply, and why, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedChild {
    /// `Kind/name`.
    pub child: String,
    /// `ChildNameConflict` or `ChildRejected`.
    pub reason: Reason,
    /// What happened and what to change; names the child.
    pub message: String,
}

impl RefusedChild {
    /// The refusal `error` stands for, when it is one (a name conflict, or the API server
    /// refusing the child); other errors (transient ones) are not refusals.
    pub fn from_error(child: String, error: &Error) -> Option<Self> {
        match error {
            Error::ChildNameConflict { .. } | Error::ChildRejected { .. } => Some(Self {
                child,
                reason: error.reason(),
                message: error.to_string(),
            }),
            _ => None,
        }
    }
}

fn describe_refused(refused: &[RefusedChild]) -> String {
    let parts: Vec<&str> = refused.iter().map(|r| r.message.as_str()).collect();
    parts.join("; ")
}

/// A failed request in words: the server's own message for an API error (never a debug dump
/// of the response), the client's description otherwise.
pub fn describe_kube(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let mut text = status.message.clone();
            if text.is_empty() {
                text = "the API server refused the request".into();
            }
            match (status.reason.as_str(), status.code) {
                ("", 0) => text,
                ("", code) => format!("{text} ({code})"),
                (reason, code) => format!("{text} ({reason}, {code})"),
            }
        }
        other => other.to_string(),
    }
}

impl Error {
    pub fn invalid_spec(errors: Vec<FieldError>) -> Self {
        Self::InvalidSpec(SpecErrors(errors))
    }

    /// Whether only a change to the spec can fix this; such errors are not retried quickly.
    pub fn is_spec_error(&self) -> bool {
        match self {
            Self::InvalidSpec(_)
            | Self::ChildRejected { .. }
            | Self::ChildNameConflict { .. }
            | Self::ChildrenRefused(_) => true,
            Self::Cleanup(inner) => inner.is_spec_error(),
            Self::Kube(_)
            | Self::MissingField(_)
            | Self::Serialization { .. }
            | Self::UndeclaredChildKind(_) => false,
        }
    }

    /// The CamelCase reason for a condition or an event.
    pub fn reason(&self) -> Reason {
        match self {
            Self::InvalidSpec(_) => crate::reason!("InvalidSpec"),
            Self::ChildRejected { .. } => crate::reason!("ChildRejected"),
            Self::ChildNameConflict { .. } => crate::reason!("ChildNameConflict"),
            // A conflict is named first: it is the user's to resolve, and the likelier cause.
            Self::ChildrenRefused(refused) => {
                if refused.iter().any(|r| r.reason == "ChildNameConflict") {
                    crate::reason!("ChildNameConflict")
                } else {
                    crate::reason!("ChildRejected")
                }
            }
            Self::Kube(_) => crate::reason!("ApiError"),
            Self::Cleanup(_) => crate::reason!("CleanupFailed"),
            Self::MissingField(_) | Self::Serialization { .. } | Self::UndeclaredChildKind(_) => {
                crate::reason!("InternalError")
            }
        }
    }

    /// Classifies an API failure on writing a child: a 400/422 means the child (and so the
    /// spec it came from) is unacceptable, a 403 that the operator may not write it (its RBAC,
    /// or a namespace being deleted); anything else is transient.
    pub fn from_child_write(kind: &str, name: &str, err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) if matches!(status.code, 400 | 403 | 422) => {
                Self::ChildRejected {
                    kind: kind.into(),
                    name: name.into(),
                    message: status.message,
                }
            }
            other => Self::Kube(other),
        }
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Self::Kube(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Sets `Ready=False` with the reason and message of `error`: what the user must change (an
/// invalid spec, a child whose name is taken, a child the API server refused).
pub fn set_not_ready(
    conditions: &mut Vec<Condition>,
    error: &Error,
    generation: Option<i64>,
    now: Timestamp,
) {
    set_condition(
        conditions,
        Observed {
            type_: "Ready",
            status: ConditionStatus::False,
            reason: error.reason(),
            message: error.to_string(),
        },
        generation,
        now,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("boom", "Invalid").with_code(code),
        ))
    }

    #[test]
    fn spec_errors_are_not_transient() {
        let e = Error::invalid_spec(vec![
            FieldError::new("spec.a", "must be set"),
            FieldError::new("spec.b", "must be positive"),
        ]);
        assert!(e.is_spec_error());
        assert_eq!(e.reason(), "InvalidSpec");
        assert_eq!(
            e.to_string(),
            "invalid spec: spec.a: must be set; spec.b: must be positive"
        );
    }

    #[test]
    fn child_write_failures_are_classified_by_code() {
        assert!(Error::from_child_write("Deployment", "x", api_error(422)).is_spec_error());
        assert!(!Error::from_child_write("Deployment", "x", api_error(500)).is_spec_error());
        assert!(!Error::from_child_write("Deployment", "x", api_error(409)).is_spec_error());
        assert!(Error::from_child_write("Deployment", "x", api_error(403)).is_spec_error());
    }

    #[test]
    fn api_errors_read_as_the_servers_message_not_a_debug_dump() {
        let status = kube::core::Status::failure(
            "deployments.apps \"x\" is forbidden: User \"u\" cannot patch resource",
            "Forbidden",
        )
        .with_code(403);
        let text = Error::Kube(kube::Error::Api(Box::new(status))).to_string();
        assert_eq!(
            text,
            "Kubernetes API request failed: deployments.apps \"x\" is forbidden: User \"u\" cannot patch resource (Forbidden, 403)"
        );
        assert!(!text.contains("Status {"), "{text}");
    }

    #[test]
    fn refused_children_are_named_with_the_conflict_first() {
        let conflict = Error::ChildNameConflict {
            kind: "Service".into(),
            name: "ledger-api".into(),
            holder: "is controlled by Team ledger".into(),
        };
        let rejected = Error::from_child_write("CronJob", "x-backup", api_error(422));
        let refused: Vec<RefusedChild> = [
            ("Service/ledger-api", &conflict),
            ("CronJob/x-backup", &rejected),
        ]
        .into_iter()
        .filter_map(|(child, e)| RefusedChild::from_error(child.into(), e))
        .collect();
        let error = Error::ChildrenRefused(refused);
        assert_eq!(error.reason(), "ChildNameConflict");
        let text = error.to_string();
        assert!(
            text.contains("Service ledger-api already exists and is controlled by Team ledger"),
            "{text}"
        );
        assert!(
            text.contains("the API server rejected CronJob x-backup: boom"),
            "{text}"
        );
        assert!(RefusedChild::from_error("x".into(), &Error::Kube(api_error(500))).is_none());
    }

    #[test]
    fn failed_cleanup_is_retried_unless_the_spec_is_at_fault() {
        let transient = Error::Cleanup(Box::new(Error::Kube(api_error(503))));
        assert!(!transient.is_spec_error());
        assert_eq!(transient.reason(), "CleanupFailed");
    }
}
