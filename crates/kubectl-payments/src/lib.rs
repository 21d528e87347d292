//! `kubectl payments`: a kubectl plugin (a `kubectl-payments` binary on PATH) for the five
//! payments kinds. `status` shows every PaymentService, BatchProcessor, ClearingAdapter,
//! SagaOrchestrator and TradingAlgorithm with what its status says and what to do;
//! `why` explains one (conditions, recent events, children, one sentence of advice);
//! `pause`/`resume` set the annotation every operator honours ([`operator_core::pause`]),
//! `run-now` and `resume-trading` their kinds' own, and each waits for the operator to say
//! it acted. It writes only what a user could with kubectl: no
//! second path into an operator.

pub mod actions;
pub mod backup;
pub mod cli;
pub mod complete;
pub mod drain;
pub mod kinds;
pub mod pause;
pub mod request;
pub mod restore;
pub mod status;
pub mod why;

use std::time::Duration;

/// The field manager of every write, so a resource's managed fields (and its `Paused`
/// condition) name this tool.
pub const FIELD_MANAGER: &str = "kubectl-payments";

/// What a command could not do, in words that say what to check.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0:?} is not KIND/NAME with KIND one of {1} (or its short name)")]
    UnknownTarget(String, String),
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        kind: String,
        namespace: String,
        name: String,
    },
    #[error(
        "the operator did not {what} within {}s: is its operator running? (kubectl get deployments -n payments-system, or -n trading-platform for TradingAlgorithm)",
        .waited.as_secs()
    )]
    NoAnswer { what: String, waited: Duration },
    #[error("{0}")]
    NothingToDo(String),
    #[error("the API server refused: {0}")]
    Api(#[from] kube::Error),
    #[error("could not print: {0}")]
    Print(String),
}
