//! `x-kubernetes-validations`: CEL rules evaluated with `self` bound to the value they sit on,
//! using the maintained `cel` crate. Transition rules (those that read `oldSelf`) are not
//! evaluated: the store validates objects, not transitions.

use serde_json::Value;

use crate::error::Cause;

/// The violation of one rule by `value` at `path`, if it fails (or cannot be evaluated).
pub fn check_rule(rule: &Value, value: &Value, path: &str) -> Option<Cause> {
    let expression = rule["rule"].as_str()?;
    let field = match rule["fieldPath"].as_str() {
        Some(extra) => format!("{path}{extra}"),
        None if path.is_empty() => "<root>".to_string(),
        None => path.to_string(),
    };
    let fail = |why: String| Cause {
        field: field.clone(),
        message: format!("Invalid value: \"object\": {why}"),
    };
    let program = match cel::Program::compile(expression) {
        Ok(p) => p,
        Err(e) => {
            return Some(fail(format!(
                "compilation failed for rule {expression}: {e}"
            )));
        }
    };
    if program.references().has_variable("oldSelf") {
        return None;
    }
    let mut context = cel::Context::default();
    if let Err(e) = context.add_variable("self", value.clone()) {
        return Some(fail(format!("cannot bind self: {e}")));
    }
    match program.execute(&context) {
        Ok(cel::Value::Bool(true)) => None,
        Ok(_) => Some(fail(
            rule["message"]
                .as_str()
                .map_or_else(|| format!("failed rule: {expression}"), String::from),
        )),
        Err(e) => Some(fail(format!(
            "rule {expression} could not be evaluated: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failing_rule_reports_its_message_at_its_field() {
        let rule = json!({"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"});
        assert!(
            check_rule(
                &rule,
                &json!({"minReplicas": 1, "maxReplicas": 3}),
                "spec.scalingPolicy"
            )
            .is_none()
        );
        let cause = check_rule(
            &rule,
            &json!({"minReplicas": 5, "maxReplicas": 3}),
            "spec.scalingPolicy",
        );
        assert_eq!(
            cause,
            Some(Cause {
                field: "spec.scalingPolicy".into(),
                message: "Invalid value: \"object\": minReplicas must not exceed maxReplicas"
                    .into()
            })
        );
    }

    #[test]
    fn list_macros_and_transition_rules() {
        let increasing = json!({"rule": "self.all(i, i >= 0 && i <= 100)"});
        assert!(check_rule(&increasing, &json!([10, 50, 100]), "spec.steps").is_none());
        assert!(check_rule(&increasing, &json!([10, 150]), "spec.steps").is_some());
        let transition = json!({"rule": "self == oldSelf", "message": "immutable"});
        assert!(check_rule(&transition, &json!("x"), "spec.name").is_none());
    }
}
