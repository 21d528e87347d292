//! Pausing an operator's hands on one resource (Strimzi's `pause-reconciliation` is the
//! model). With `payments.io/paused: "true"` on a resource, its operator writes nothing to
//! the resource's children and says so in status: `Paused=True`, naming who set the
//! annotation and when (from the annotation's own managed-fields entry, so nobody has to
//! type it). Setting it to `"false"` or removing it resumes with the next pass, which also
//! drops the condition. Deletion still runs the finalizer: a paused resource never holds up
//! its namespace's deletion.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use crate::annotations::{self, ReadAnnotation};
use crate::conditions::{ConditionStatus, Observed, set_condition};
use crate::status::ReportedStatus;

/// The annotation that pauses a resource.
pub const PAUSE_ANNOTATION: &str = "payments.io/paused";

/// The condition a paused resource carries.
pub const PAUSED: &str = "Paused";

/// The pause annotation as every operator reads it, so another value is warned of.
pub const READ: ReadAnnotation = ReadAnnotation {
    key: PAUSE_ANNOTATION,
    accepts: "\"true\" to pause the operator's writes to this resource's children, \"false\" to resume",
    valid: |v| v == "true" || v == "false",
};

/// Whether the resource asks its operator to pause.
pub fn requested(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(PAUSE_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// `current` with `Paused=True` saying who paused it, when, and how to resume. Everything
/// else stays as the last pass left it (phase, Ready, `observedGeneration`): that is what
/// still runs, and a spec changed since shows as a generation not yet observed.
pub fn paused_status<S: ReportedStatus>(
    current: Option<&S>,
    meta: &ObjectMeta,
    now: Timestamp,
) -> S {
    let mut status = current.cloned().unwrap_or_default();
    let who = match annotations::written_by(meta, PAUSE_ANNOTATION) {
        Some((manager, Some(at))) => format!(" by {manager} at {at}"),
        Some((manager, None)) => format!(" by {manager}"),
        None => String::new(),
    };
    let message = format!(
        "paused{who} with annotation {PAUSE_ANNOTATION}=true: the operator writes nothing to \
         this resource's children and acts on no spec change; remove the annotation (or set it \
         to \"false\") to resume"
    );
    set_condition(
        status.conditions_mut(),
        Observed {
            type_: PAUSED,
            status: ConditionStatus::True,
            reason: crate::reason!("ReconciliationPaused"),
            message,
        },
        meta.generation,
        now,
    );
    status
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        Condition, FieldsV1, ManagedFieldsEntry, Time,
    };
    use serde_json::json;

    use super::*;
    use crate::conditions::find;

    #[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
    struct Status {
        phase: Option<&'static str>,
        conditions: Vec<Condition>,
        observed_generation: Option<i64>,
    }

    crate::reported_status!(Status, &'static str);

    fn annotated(value: &str) -> ObjectMeta {
        ObjectMeta {
            annotations: Some(BTreeMap::from([(PAUSE_ANNOTATION.into(), value.into())])),
            generation: Some(4),
            ..ObjectMeta::default()
        }
    }

    fn entry(manager: &str, at: &str, annotations: serde_json::Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            time: Some(Time(at.parse().unwrap())),
            fields_v1: Some(FieldsV1(
                json!({"f:metadata": {"f:annotations": annotations}}),
            )),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn only_true_pauses() {
        assert!(requested(&annotated("true")));
        assert!(!requested(&annotated("false")));
        assert!(!requested(&annotated("yes")));
        assert!(!requested(&ObjectMeta::default()));
        assert!((READ.valid)("false") && !(READ.valid)("yes"));
    }

    #[test]
    fn who_paused_comes_from_the_entry_that_holds_the_annotation() {
        let mut meta = annotated("true");
        meta.managed_fields = Some(vec![
            entry("helm", "2026-12-01T10:00:00Z", json!({"f:team": {}})),
            entry(
                "kubectl-annotate",
                "2026-12-02T09:30:00Z",
                json!({"f:payments.io/paused": {}}),
            ),
        ]);
        let (who, at) = annotations::written_by(&meta, PAUSE_ANNOTATION).unwrap();
        assert_eq!(who, "kubectl-annotate");
        assert_eq!(at.unwrap().to_string(), "2026-12-02T09:30:00Z");

        let status: Status = paused_status(None, &meta, "2026-12-02T09:31:00Z".parse().unwrap());
        let paused = find(&status.conditions, PAUSED).unwrap();
        assert_eq!(paused.status, "True");
        assert_eq!(paused.reason, "ReconciliationPaused");
        assert!(
            paused
                .message
                .contains("by kubectl-annotate at 2026-12-02T09:30:00Z"),
            "{}",
            paused.message
        );
        assert!(paused.message.contains("remove the annotation"));
    }

    #[test]
    fn a_pause_without_a_recorded_manager_still_says_how_to_resume() {
        let status: Status = paused_status(None, &annotated("true"), Timestamp::UNIX_EPOCH);
        let paused = find(&status.conditions, PAUSED).unwrap();
        assert!(paused.message.starts_with("paused with annotation"));
        assert_eq!(
            status.observed_generation, None,
            "the spec was not acted on"
        );
    }
}
