//! `kubectl payments pause|resume KIND/NAME`: sets or removes `payments.io/paused` (the
//! annotation every operator honours), then waits for the operator's answer in status.

use std::time::Duration;

use kube::Client;
use operator_core::pause::{PAUSE_ANNOTATION, PAUSED};
use serde_json::{Value, json};

use crate::CliError;
use crate::request::Target;
use crate::status::condition;

/// Pauses (`paused`) or resumes one resource and returns what the operator then reported:
/// the `Paused` condition's message, or, resumed, its Ready condition.
pub async fn set(
    client: &Client,
    target: Target<'_>,
    paused: bool,
    wait: Duration,
) -> Result<String, CliError> {
    let (value, what) = if paused {
        (json!("true"), "pause")
    } else {
        (Value::Null, "resume")
    };
    target
        .annotate_and_wait(client, PAUSE_ANNOTATION, value, what, wait, |status| {
            answered(status, paused)
        })
        .await
}

/// The operator's answer in `status`, once there is one.
fn answered(status: &Value, paused: bool) -> Option<String> {
    let condition = |type_: &str| condition(status, type_);
    match (paused, condition(PAUSED)) {
        (true, Some(c)) if c["status"] == "True" => Some(c["message"].as_str()?.to_string()),
        (false, None) => {
            let ready = condition("Ready")?;
            Some(format!(
                "resumed: Ready={} {}",
                ready["status"].as_str().unwrap_or("Unknown"),
                ready["message"].as_str().unwrap_or_default()
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_is_answered_by_the_condition_and_a_resume_by_its_absence() {
        let paused = json!({"conditions": [{"type": "Paused", "status": "True", "message": "paused by x"},
                                           {"type": "Ready", "status": "True", "message": "ok"}]});
        let running = json!({"conditions": [{"type": "Ready", "status": "True", "message": "ok"}]});
        assert_eq!(answered(&paused, true).as_deref(), Some("paused by x"));
        assert_eq!(answered(&running, true), None);
        assert_eq!(answered(&paused, false), None);
        assert_eq!(
            answered(&running, false).as_deref(),
            Some("resumed: Ready=True ok")
        );
    }
}
