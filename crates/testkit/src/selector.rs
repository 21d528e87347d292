//! Label selectors (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`) and the field
//! selectors every kind supports (`metadata.name`, `metadata.namespace`).

use serde_json::Value;

use crate::error::ApiError;

#[derive(Clone, Debug, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label or field selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector(Vec<Requirement>);

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn set_values(s: &str) -> Result<Vec<String>, ApiError> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| ApiError::bad_request(format!("unable to parse requirement: {s}")))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
}

impl Selector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let req = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), set_values(v)?)
            } else if let Some((k, v)) = part.split_once(" in ") {
                Requirement::In(k.trim().into(), set_values(v)?)
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::NotExists(k.trim().into())
            } else {
                Requirement::Exists(part.into())
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Matches a label map (`metadata.labels`).
    pub fn matches_labels(&self, labels: &Value) -> bool {
        self.matches(|k| labels.get(k).and_then(Value::as_str).map(String::from))
    }

    /// Matches the fields every kind can be selected by.
    /// Whether `obj` matches as a field selector. Every kind selects by `metadata.name` and
    /// `metadata.namespace`; `selectable` names the further fields its kind allows (the real
    /// server refuses any other with 400, and so does this).
    pub fn matches_fields(&self, obj: &Value, selectable: &[&str]) -> Result<bool, ApiError> {
        for req in &self.0 {
            let key = match req {
                Requirement::Equals(k, _) | Requirement::NotEquals(k, _) => k,
                _ => {
                    return Err(ApiError::bad_request(
                        "field selectors support only = and !=",
                    ));
                }
            };
            if key != "metadata.name"
                && key != "metadata.namespace"
                && !selectable.contains(&key.as_str())
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {key}"
                )));
            }
        }
        Ok(self.matches(|k| {
            let found = k.split('.').try_fold(obj, |v, p| v.get(p));
            Some(match found {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            })
        }))
    }

    fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.0.iter().all(|req| match req {
            Requirement::Equals(k, v) => lookup(k).as_deref() == Some(v),
            Requirement::NotEquals(k, v) => lookup(k).as_deref() != Some(v),
            Requirement::In(k, vs) => lookup(k).is_some_and(|x| vs.contains(&x)),
            Requirement::NotIn(k, vs) => lookup(k).is_none_or(|x| !vs.contains(&x)),
            Requirement::Exists(k) => lookup(k).is_some(),
            Requirement::NotExists(k) => lookup(k).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_requirements() -> Result<(), ApiError> {
        let labels = json!({"app": "pay", "tier": "web"});
        assert!(Selector::parse("app=pay,tier in (web, api)")?.matches_labels(&labels));
        assert!(Selector::parse("app,!missing")?.matches_labels(&labels));
        assert!(!Selector::parse("app!=pay")?.matches_labels(&labels));
        assert!(!Selector::parse("tier notin (web)")?.matches_labels(&labels));
        assert!(Selector::parse("")?.matches_labels(&labels));
        Ok(())
    }

    #[test]
    fn field_selector_by_name() -> Result<(), ApiError> {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}});
        assert!(Selector::parse("metadata.name=a")?.matches_fields(&obj, &[])?);
        assert!(!Selector::parse("metadata.namespace!=ns")?.matches_fields(&obj, &[])?);
        assert!(
            Selector::parse("spec.x=1")?
                .matches_fields(&obj, &[])
                .is_err()
        );
        assert!(!Selector::parse("spec.x=1")?.matches_fields(&obj, &["spec.x"])?);
        Ok(())
    }
}
