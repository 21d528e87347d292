//! What the real API server validates on every object, whatever its kind, and testkit must
//! too so a test sees the refusal a cluster would give: label keys and values, the size of a
//! ConfigMap's or Secret's data, and the resources of the containers of a pod template
//! (quantities that read, none negative, no limit below its request).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::error::Cause;
use crate::registry::ResourceType;

/// A ConfigMap's or Secret's data: at most 1 MiB, all keys together.
const MAX_DATA_BYTES: usize = 1024 * 1024;

static NAME_PART: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").ok());
static DNS_SUBDOMAIN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").ok()
});

fn matches(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(s))
}

/// A qualified name (`prefix/name` or `name`), as label keys are: the messages the real
/// server gives.
fn label_key(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && (prefix.is_empty() || prefix.len() > 253 || !matches(&DNS_SUBDOMAIN, prefix))
    {
        return Some(format!(
            "Invalid value: {key:?}: prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ));
    }
    if name.is_empty() || name.len() > 63 {
        return Some(format!(
            "Invalid value: {key:?}: name part must be no more than 63 characters"
        ));
    }
    (!matches(&NAME_PART, name)).then(|| format!(
        "Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
    ))
}

fn label_value(value: &str) -> Option<String> {
    if value.len() > 63 {
        return Some(format!(
            "Invalid value: {value:?}: must be no more than 63 characters"
        ));
    }
    (!value.is_empty() && !matches(&NAME_PART, value)).then(|| format!(
        "Invalid value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
    ))
}

/// The value of a quantity (`500m`, `2Gi`, `1e3`), or `None` when it does not read as one.
fn quantity(value: &str) -> Option<f64> {
    static QUANTITY: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$").ok()
    });
    let captures = QUANTITY.as_ref()?.captures(value)?;
    let number: f64 = captures.get(1)?.as_str().parse().ok()?;
    let scale = match captures.get(2).map_or("", |m| m.as_str()) {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => 10f64.powi(exponent[1..].parse().ok()?),
    };
    Some(number * scale)
}

/// The pod spec of a workload kind, and the path to it.
fn pod_spec<'a>(kind: &str, obj: &'a Value) -> Option<(&'a Value, &'static str)> {
    let spec = &obj["spec"];
    let (pod, path) = match kind {
        "Pod" => (spec, "spec"),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            (&spec["template"]["spec"], "spec.template.spec")
        }
        "CronJob" => (
            &spec["jobTemplate"]["spec"]["template"]["spec"],
            "spec.jobTemplate.spec.template.spec",
        ),
        _ => return None,
    };
    pod.is_object().then_some((pod, path))
}

/// The refusals of a pod template's container resources, as the real server words them.
/// A quantity that does not read is the 400 of a body the server cannot decode (`Err`).
fn container_resources(kind: &str, obj: &Value) -> Result<Vec<Cause>, String> {
    let mut causes = Vec::new();
    let Some((pod, path)) = pod_spec(kind, obj) else {
        return Ok(causes);
    };
    for list in ["initContainers", "containers"] {
        for (i, container) in pod[list].as_array().into_iter().flatten().enumerate() {
            let at = format!("{path}.{list}[{i}].resources");
            let read = |kind: &str| -> Result<Vec<(String, f64, String)>, String> {
                container["resources"][kind]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, q)| {
                        let text = q.as_str().map_or_else(|| q.to_string(), String::from);
                        quantity(&text).map(|v| (name.clone(), v, text.clone())).ok_or_else(|| {
                            format!("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' ({at}.{kind}.{name}: {text:?})")
                        })
                    })
                    .collect()
            };
            let (requests, limits) = (read("requests")?, read("limits")?);
            for (kind, values) in [("requests", &requests), ("limits", &limits)] {
                for (name, value, text) in values {
                    if *value < 0.0 {
                        causes.push(Cause {
                            field: format!("{at}.{kind}[{name}]"),
                            message: format!(
                                "Invalid value: {text:?}: must be greater than or equal to 0"
                            ),
                        });
                    }
                }
            }
            for (name, request, text) in &requests {
                if let Some((_, limit, limit_text)) = limits.iter().find(|(n, _, _)| n == name)
                    && request > limit
                {
                    causes.push(Cause {
                        field: format!("{at}.requests"),
                        message: format!(
                            "Invalid value: {text:?}: must be less than or equal to {name} limit of {limit_text}"
                        ),
                    });
                }
            }
        }
    }
    Ok(causes)
}

/// The refusals of `obj` (of type `rt`) on the checks of the module docs: `Err` for a body
/// the real server could not decode (400), else the invalid fields (422).
pub(super) fn object_meta_and_size(rt: &ResourceType, obj: &Value) -> Result<Vec<Cause>, String> {
    let mut causes = Vec::new();
    let builtin = rt.group.is_empty() || ["apps", "batch"].contains(&rt.group.as_str());
    if builtin {
        causes.extend(container_resources(&rt.kind, obj)?);
    }
    for (key, value) in obj["metadata"]["labels"].as_object().into_iter().flatten() {
        let value = value.as_str().unwrap_or_default();
        for message in [label_key(key), label_value(value)].into_iter().flatten() {
            causes.push(Cause {
                field: "metadata.labels".into(),
                message,
            });
        }
    }
    if rt.group.is_empty() && (rt.kind == "ConfigMap" || rt.kind == "Secret") {
        // Counted as stored: a ConfigMap's `data` as text, base64 values (a Secret's `data`,
        // a ConfigMap's `binaryData`) as the bytes they decode to.
        let encoded = |field: &str| rt.kind == "Secret" || field == "binaryData";
        let size: usize = ["data", "binaryData"]
            .iter()
            .flat_map(|f| {
                obj[*f]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(move |(k, v)| (*f, k, v))
            })
            .map(|(f, k, v)| {
                let len = v.as_str().map_or(0, str::len);
                k.len() + if encoded(f) { len / 4 * 3 } else { len }
            })
            .sum();
        if size > MAX_DATA_BYTES {
            causes.push(Cause {
                field: "[]".into(),
                message: format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
            });
        }
    }
    Ok(causes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked_as_the_real_server_checks_them() {
        assert_eq!(label_key("app.kubernetes.io/name"), None);
        assert_eq!(label_key("team"), None);
        assert!(label_key("Bad_Prefix/x").is_some());
        assert!(label_key(&"a".repeat(64)).is_some());
        assert_eq!(label_value(""), None);
        assert_eq!(label_value(&"a".repeat(63)), None);
        assert!(label_value(&"a".repeat(64)).is_some());
        assert!(label_value("-x").is_some());
    }

    #[test]
    fn container_resources_are_read_and_compared() {
        assert_eq!(quantity("500m"), Some(0.5));
        assert_eq!(quantity("2Gi"), Some(2147483648.0));
        assert_eq!(quantity("lots"), None);
        let deployment = serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1", "memory": "-1"}}}
        ]}}}});
        let causes = container_resources("Deployment", &deployment).unwrap_or_default();
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.template.spec.containers[0].resources.limits[memory]",
                "spec.template.spec.containers[0].resources.requests"
            ]
        );
        let unreadable = serde_json::json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"memory": "lots"}}}
        ]}});
        assert!(container_resources("Pod", &unreadable).is_err());
    }
}
