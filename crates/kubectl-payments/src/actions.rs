//! The Day-2 requests of one kind, each the annotation its operator already honours:
//! `promote` and `abort` (PaymentService, `payments.io/promote`, `payments.io/abort`), `run-now` (BatchProcessor,
//! `payments.io/run-now`) and `resume-trading` (TradingAlgorithm, `fintech.io/resume-trading`).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use serde_json::{Value, json};

use crate::CliError;
use crate::request::Target;
use crate::status::condition;

/// Switches a PaymentService's held blue-green rollout to the version waiting on the idle
/// colour, and returns once that version serves.
pub async fn promote(
    client: &Client,
    target: Target<'_>,
    wait: Duration,
) -> Result<String, CliError> {
    only(target, "promote")?;
    let status = target.get(client).await?.data["status"].take();
    let version = waiting_version(&status).ok_or_else(|| {
        CliError::NothingToDo(format!(
            "PaymentService {}/{} has no version waiting for promotion (its Progressing condition is not AwaitingPromotion)",
            target.namespace, target.name
        ))
    })?;
    target
        .annotate_and_wait(
            client,
            payment_service::PROMOTE_ANNOTATION,
            json!(version),
            "promote",
            wait,
            |status| {
                (status["currentVersion"] == version.as_str())
                    .then(|| format!("version {version} is serving"))
            },
        )
        .await
}

/// The version a held blue-green rollout waits to be promoted to.
fn waiting_version(status: &Value) -> Option<String> {
    let awaiting = condition(status, "Progressing")?["reason"] == "AwaitingPromotion";
    awaiting.then(|| rolling_out(status)).flatten()
}

/// Gives up on a PaymentService's rollout in progress, and returns once the operator has
/// rolled back to the version that served before it.
pub async fn abort(
    client: &Client,
    target: Target<'_>,
    wait: Duration,
) -> Result<String, CliError> {
    only(target, "abort")?;
    let status = target.get(client).await?.data["status"].take();
    let Some(version) = rolling_out(&status) else {
        return Err(CliError::NothingToDo(format!(
            "PaymentService {}/{} has no rollout in progress (status.rollout is empty): nothing to abort",
            target.namespace, target.name
        )));
    };
    target
        .annotate_and_wait(
            client,
            payment_service::ABORT_ANNOTATION,
            json!(version),
            "abort the rollout of",
            wait,
            |status| rolled_back(status, &version),
        )
        .await
}

/// The version a PaymentService's rollout in progress rolls out.
fn rolling_out(status: &Value) -> Option<String> {
    status["rollout"]["target"]["version"]
        .as_str()
        .map(String::from)
}

/// The operator's answer to aborting the rollout of `version`.
fn rolled_back(status: &Value, version: &str) -> Option<String> {
    let done =
        status["failedRollout"]["target"]["version"] == version && status["rollout"].is_null();
    done.then(|| {
        let serving = status["currentVersion"]
            .as_str()
            .unwrap_or("the previous version");
        format!("the rollout of {version} was aborted; {serving} serves")
    })
}

/// Starts a run of a BatchProcessor now, with a fresh value (the current second), and
/// returns the Job the operator started for it.
pub async fn run_now(
    client: &Client,
    target: Target<'_>,
    wait: Duration,
) -> Result<String, CliError> {
    only(target, "run-now")?;
    let value = Timestamp::now().as_second().to_string();
    target
        .annotate_and_wait(
            client,
            batch_processor::RUN_NOW_ANNOTATION,
            json!(value),
            "start a run of",
            wait,
            |status| run_started(status, target.name, &value),
        )
        .await
}

/// The operator's answer to run-now `value` on batch `name`: it handled the value, and
/// started a run.
fn run_started(status: &Value, name: &str, value: &str) -> Option<String> {
    if status["lastRunNow"] != value {
        return None;
    }
    let started = status["runNowValues"]
        .as_array()
        .is_some_and(|values| values.iter().any(|v| v == value));
    Some(if started {
        let job = batch_processor::run_now_job_name(name, value);
        format!(
            "started Job {job} for {}={value}",
            batch_processor::RUN_NOW_ANNOTATION
        )
    } else {
        format!(
            "{}={value} was not run: a run was already started for it",
            batch_processor::RUN_NOW_ANNOTATION
        )
    })
}

/// Lifts a TradingAlgorithm's risk halt: names the halt that is on (its `since`), and
/// returns when and by whom the operator says it resumed.
pub async fn resume_trading(
    client: &Client,
    target: Target<'_>,
    wait: Duration,
) -> Result<String, CliError> {
    only(target, "resume-trading")?;
    let status = target.get(client).await?.data["status"].take();
    let Some(since) = status["riskHalt"]["since"].as_str().map(String::from) else {
        return Err(CliError::NothingToDo(format!(
            "TradingAlgorithm {}/{} is not halted (status.riskHalt is empty): nothing to resume",
            target.namespace, target.name
        )));
    };
    target
        .annotate_and_wait(
            client,
            trading_algorithm::RESUME_ANNOTATION,
            json!(since),
            "resume trading of",
            wait,
            |status| resumed(status, &since),
        )
        .await
}

/// The operator's answer to lifting the halt that began at `since`.
fn resumed(status: &Value, since: &str) -> Option<String> {
    let resume = &status["riskResume"];
    (resume["haltedSince"] == since).then(|| {
        format!(
            "trading resumed at {} by {} (halted since {since})",
            resume["resumedAt"].as_str().unwrap_or_default(),
            resume["resumedBy"].as_str().unwrap_or("unknown")
        )
    })
}

/// The kind each of these requests is for, by its subcommand.
pub const REQUEST_KINDS: [(&str, &str); 6] = [
    ("promote", "PaymentService"),
    ("abort", "PaymentService"),
    ("drain", "ClearingAdapter"),
    ("restore", "ClearingAdapter"),
    ("run-now", "BatchProcessor"),
    ("resume-trading", "TradingAlgorithm"),
];

/// The kind `action` is a request of (any kind for an action not listed).
pub fn kind_of(action: &str) -> Option<&'static str> {
    REQUEST_KINDS
        .iter()
        .find(|(a, _)| *a == action)
        .map(|(_, kind)| *kind)
}

/// Refuses an action on a kind whose operator has no such request.
pub(crate) fn only(target: Target<'_>, action: &str) -> Result<(), CliError> {
    let kind = kind_of(action).unwrap_or_default();
    if target.kind.resource.kind == kind {
        Ok(())
    } else {
        Err(CliError::NothingToDo(format!(
            "{action} is a {kind} request; {} {} has none",
            target.kind.resource.kind, target.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_now_is_answered_once_its_value_is_handled() {
        let before = json!({"lastRunNow": "1"});
        assert_eq!(run_started(&before, "b", "2"), None);
        let started = json!({"lastRunNow": "2", "runNowValues": ["1", "2"]});
        let job = batch_processor::run_now_job_name("b", "2");
        assert_eq!(
            run_started(&started, "b", "2"),
            Some(format!("started Job {job} for payments.io/run-now=2"))
        );
        let reused = json!({"lastRunNow": "2", "runNowValues": ["1"]});
        assert!(run_started(&reused, "b", "2").is_some_and(|a| a.contains("was not run")));
    }

    #[test]
    fn a_resume_is_answered_by_the_resume_of_that_halt() {
        let since = "2026-12-07T10:00:00Z";
        let halted = json!({"riskHalt": {"since": since}});
        assert_eq!(resumed(&halted, since), None);
        let lifted = json!({"riskResume": {"haltedSince": since, "resumedAt": "2026-12-07T10:05:00Z", "resumedBy": "kubectl-payments"}});
        assert_eq!(
            resumed(&lifted, since).as_deref(),
            Some(
                "trading resumed at 2026-12-07T10:05:00Z by kubectl-payments (halted since 2026-12-07T10:00:00Z)"
            )
        );
    }

    #[test]
    fn only_a_rollout_awaiting_promotion_has_a_version_to_promote() {
        let held = json!({"rollout": {"target": {"version": "1.6.0"}},
            "conditions": [{"type": "Progressing", "reason": "AwaitingPromotion"}]});
        assert_eq!(waiting_version(&held).as_deref(), Some("1.6.0"));
        let rolling = json!({"rollout": {"target": {"version": "1.6.0"}},
            "conditions": [{"type": "Progressing", "reason": "RollingUpdate"}]});
        assert_eq!(waiting_version(&rolling), None);
        assert_eq!(waiting_version(&Value::Null), None);
    }

    #[test]
    fn an_abort_is_answered_once_that_version_is_rolled_back() {
        let rolling =
            json!({"currentVersion": "1.5.0", "rollout": {"target": {"version": "1.6.0"}}});
        assert_eq!(rolling_out(&rolling).as_deref(), Some("1.6.0"));
        assert_eq!(rolled_back(&rolling, "1.6.0"), None);
        let back =
            json!({"currentVersion": "1.5.0", "failedRollout": {"target": {"version": "1.6.0"}}});
        assert_eq!(rolling_out(&back), None);
        assert_eq!(
            rolled_back(&back, "1.6.0").as_deref(),
            Some("the rollout of 1.6.0 was aborted; 1.5.0 serves")
        );
        assert_eq!(
            rolled_back(&back, "1.7.0"),
            None,
            "another version's failure"
        );
    }

    #[test]
    fn an_action_of_another_kind_is_refused() {
        let (kind, _) = crate::kinds::target("ps/x").unwrap();
        let target = Target {
            kind: &kind,
            namespace: "payments",
            name: "x",
        };
        let error = only(target, "run-now").unwrap_err().to_string();
        assert_eq!(
            error,
            "run-now is a BatchProcessor request; PaymentService x has none"
        );
    }
}
