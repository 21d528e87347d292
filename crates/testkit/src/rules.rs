//! `x-kubernetes-validations`: CEL rules evaluated with `self` bound to the value they sit on,
//! using the maintained `cel` crate. Transition rules (those that read `oldSelf`) run on an
//! update where the value existed before, with `oldSelf` bound to it, as the API server runs
//! them; `optionalOldSelf` is not modelled. A failed rule reports its `messageExpression`
//! when that evaluates to a one-line string, else its `message`.

use std::sync::{Arc, LazyLock};

use serde_json::Value;

use crate::error::Cause;

/// CEL as the API server offers it to CRD rules: the standard library plus the extension
/// libraries Kubernetes adds that the `cel` crate has (strings, with `format`, and lists).
static KUBERNETES_CEL: LazyLock<Arc<cel::Env>> = LazyLock::new(|| {
    let mut env = cel::Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .and_then(|()| env.add_extension(cel::extensions::lists))
        .expect("the cel crate's extensions declare distinct overloads");
    Arc::new(env)
});

/// A value being validated: where it is, what it is now, what it was (on an update, where
/// the value existed before) and its schema type, which the API server names in the error.
pub struct Checked<'a> {
    pub value: &'a Value,
    pub old: Option<&'a Value>,
    pub path: &'a str,
    pub type_name: &'a str,
}

/// The violation of one rule by the value, if it fails (or cannot be evaluated).
pub fn check_rule(rule: &Value, at: &Checked) -> Option<Cause> {
    let expression = rule["rule"].as_str()?;
    let field = match rule["fieldPath"].as_str() {
        Some(extra) => format!("{}{extra}", at.path),
        None if at.path.is_empty() => "<root>".to_string(),
        None => at.path.to_string(),
    };
    let fail = |why: String| {
        let message = match rule["reason"].as_str() {
            Some("FieldValueForbidden") => format!("Forbidden: {why}"),
            Some("FieldValueRequired") => format!("Required value: {why}"),
            _ => format!("Invalid value: \"{}\": {why}", at.type_name),
        };
        Cause {
            field: field.clone(),
            message,
        }
    };
    let program = match KUBERNETES_CEL.compile(expression) {
        Ok(p) => p,
        Err(e) => {
            return Some(fail(format!(
                "compilation failed for rule {expression}: {e}"
            )));
        }
    };
    let transition = program.references().has_variable("oldSelf");
    let mut context = cel::Context::with_env(Arc::clone(&KUBERNETES_CEL));
    if let Err(e) = context.add_variable("self", at.value.clone()) {
        return Some(fail(format!("cannot bind self: {e}")));
    }
    match (transition, at.old) {
        (true, None) => return None,
        (true, Some(old)) => {
            if let Err(e) = context.add_variable("oldSelf", old.clone()) {
                return Some(fail(format!("cannot bind oldSelf: {e}")));
            }
        }
        (false, _) => {}
    }
    match program.execute(&context) {
        Ok(cel::Value::Bool(true)) => None,
        Ok(_) => Some(fail(failure_message(rule, expression, &context))),
        Err(e) => Some(fail(format!(
            "rule {expression} could not be evaluated: {e}"
        ))),
    }
}

/// What a failed rule says: its `messageExpression`'s value when that is a one-line string
/// with something in it, else its `message`, else the rule itself.
fn failure_message(rule: &Value, expression: &str, context: &cel::Context) -> String {
    let computed = rule["messageExpression"]
        .as_str()
        .and_then(|m| KUBERNETES_CEL.compile(m).ok())
        .and_then(|p| p.execute(context).ok())
        .and_then(|v| match v {
            cel::Value::String(s) if !s.trim().is_empty() && !s.contains('\n') => {
                Some(s.to_string())
            }
            _ => None,
        });
    computed.unwrap_or_else(|| {
        rule["message"]
            .as_str()
            .map_or_else(|| format!("failed rule: {expression}"), String::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at<'a>(value: &'a Value, old: Option<&'a Value>, path: &'a str) -> Checked<'a> {
        let type_name = match value {
            Value::Object(_) => "object",
            Value::Array(_) => "array",
            Value::String(_) => "string",
            _ => "integer",
        };
        Checked {
            value,
            old,
            path,
            type_name,
        }
    }

    #[test]
    fn a_failing_rule_reports_its_message_at_its_field() {
        let rule = json!({"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"});
        let fine = json!({"minReplicas": 1, "maxReplicas": 3});
        assert!(check_rule(&rule, &at(&fine, None, "spec.scalingPolicy")).is_none());
        let inverted = json!({"minReplicas": 5, "maxReplicas": 3});
        assert_eq!(
            check_rule(&rule, &at(&inverted, None, "spec.scalingPolicy")),
            Some(Cause {
                field: "spec.scalingPolicy".into(),
                message: "Invalid value: \"object\": minReplicas must not exceed maxReplicas"
                    .into()
            })
        );
    }

    #[test]
    fn list_macros() {
        let bounded = json!({"rule": "self.all(i, i >= 0 && i <= 100)"});
        let steps = json!([10, 50, 100]);
        assert!(check_rule(&bounded, &at(&steps, None, "spec.steps")).is_none());
        let over = json!([10, 150]);
        assert!(check_rule(&bounded, &at(&over, None, "spec.steps")).is_some());
    }

    #[test]
    fn transition_rules_run_only_where_there_was_an_old_value() {
        let rule = json!({
            "rule": "self == oldSelf",
            "messageExpression": "'cannot change from %s to %s'.format([oldSelf, self])",
            "message": "immutable",
        });
        let (gold, silver) = (json!("gold"), json!("silver"));
        assert!(check_rule(&rule, &at(&silver, None, "spec.tier")).is_none());
        assert!(check_rule(&rule, &at(&gold, Some(&gold), "spec.tier")).is_none());
        assert_eq!(
            check_rule(&rule, &at(&silver, Some(&gold), "spec.tier")),
            Some(Cause {
                field: "spec.tier".into(),
                message: "Invalid value: \"string\": cannot change from gold to silver".into()
            })
        );
    }

    #[test]
    fn a_message_expression_that_fails_falls_back_to_the_message() {
        let rule = json!({
            "rule": "self > 1",
            "messageExpression": "self.missing + ' is wrong'",
            "message": "must exceed 1",
            "reason": "FieldValueForbidden",
        });
        let one = json!(1);
        assert_eq!(
            check_rule(&rule, &at(&one, None, "spec.size")).map(|c| c.message),
            Some("Forbidden: must exceed 1".into())
        );
    }
}
