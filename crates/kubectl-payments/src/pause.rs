//! `kubectl payments pause|resume KIND/NAME`: sets or removes `payments.io/paused` (the
//! annotation every operator honours), then waits for the operator's answer in status.

use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Patch, PatchParams};
use operator_core::pause::{PAUSE_ANNOTATION, PAUSED};
use serde_json::{Value, json};

use crate::kinds::Kind;
use crate::{CliError, FIELD_MANAGER};

/// How often the status is read while waiting.
const LOOK_AGAIN: Duration = Duration::from_millis(500);

/// Pauses (`paused`) or resumes one resource and returns what the operator then reported:
/// the `Paused` condition's message, or, resumed, its Ready condition.
pub async fn set(
    client: &Client,
    kind: &Kind,
    namespace: &str,
    name: &str,
    paused: bool,
    wait: Duration,
) -> Result<String, CliError> {
    let api = kind.api(client, Some(namespace));
    let value = if paused { json!("true") } else { Value::Null };
    let patch = json!({"metadata": {"annotations": {PAUSE_ANNOTATION: value}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let not_found = || CliError::NotFound {
        kind: kind.resource.kind.clone(),
        namespace: namespace.into(),
        name: name.into(),
    };
    match api.patch(name, &params, &Patch::Merge(&patch)).await {
        Err(kube::Error::Api(s)) if s.code == 404 => return Err(not_found()),
        other => other?,
    };
    let started = Instant::now();
    loop {
        let object = api.get_opt(name).await?.ok_or_else(not_found)?;
        if let Some(answer) = answered(&object.data["status"], paused) {
            return Ok(answer);
        }
        if started.elapsed() >= wait {
            let what = if paused { "pause" } else { "resume" };
            return Err(CliError::NoAnswer {
                what: format!("{what} {}/{name}", kind.resource.kind),
                waited: wait,
            });
        }
        tokio::time::sleep(LOOK_AGAIN).await;
    }
}

/// The operator's answer in `status`, once there is one.
fn answered(status: &Value, paused: bool) -> Option<String> {
    let condition = |type_: &str| {
        status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
    };
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
