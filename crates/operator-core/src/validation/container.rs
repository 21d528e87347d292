//! What a container is given: its image reference and its resource requirements, checked as
//! the API server and the container runtime will read them, so a bad value is refused at our
//! door with its field named instead of failing later in a child.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use regex::Regex;

use super::{FieldErrors, quantity, regex};

/// The longest repository name a registry accepts (the distribution spec's limit).
pub const MAX_IMAGE_NAME: usize = 255;
/// The longest image reference accepted: a name, a tag of at most 128 and a digest.
pub const MAX_IMAGE_REFERENCE: usize = 512;

/// An image reference by the OCI distribution grammar: `[host[:port]/]path[:tag][@digest]`,
/// the path lowercase components joined by `/`, a tag of at most 128 word characters, a
/// digest `algorithm:hex` of at least 32 hex digits.
static IMAGE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    let domain_component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let host = format!(r"(?:{domain_component}(?:\.{domain_component})*|\[[a-fA-F0-9:]+\])");
    let name = format!(r"(?:{host}(?::[0-9]+)?/)?{component}(?:/{component})*");
    // ASCII word characters, as the distribution grammar means by `\w`: a Unicode class
    // repeated 127 times also made this one regex cost 7 MiB of every operator's heap.
    let tag = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
    let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}";
    regex(&format!(r"^(?P<name>{name})(?::{tag})?(?:@{digest})?$"))
});

/// What a message shows of a value a user gave: at most 80 characters of it.
fn shown(value: &str) -> String {
    match value.char_indices().nth(80) {
        Some((cut, _)) => format!("{:?}… ({} characters)", &value[..cut], value.len()),
        None => format!("{value:?}"),
    }
}

/// An image reference a container runtime can pull (see [`IMAGE`]), at most
/// [`MAX_IMAGE_REFERENCE`] characters with a name of at most [`MAX_IMAGE_NAME`].
pub fn image_reference(value: &str) -> Result<(), String> {
    let name_length = IMAGE
        .as_ref()
        .and_then(|re| re.captures(value))
        .and_then(|c| c.name("name"))
        .map(|n| n.as_str().len());
    match name_length {
        Some(n) if n <= MAX_IMAGE_NAME && value.len() <= MAX_IMAGE_REFERENCE => Ok(()),
        _ => Err(format!(
            "must be an image reference such as registry.example/payments:1.4.2 or registry.example/payments@sha256:<64 hex digits> (a lowercase repository path of at most {MAX_IMAGE_NAME} characters, a tag of at most 128), got {}",
            shown(value)
        )),
    }
}

/// The value of a quantity (`500m` = 0.5, `2Gi` = 2147483648, `1e3` = 1000), for comparing
/// requests with limits.
pub fn quantity_value(value: &str) -> Result<f64, String> {
    quantity(value)?;
    let split = value
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map_or(value.len(), |(i, _)| i);
    let (number, suffix) = value.split_at(split);
    let number: f64 = number.parse().map_err(|_| {
        format!(
            "must be a quantity such as 500m, 2Gi or 1.5, got {}",
            shown(value)
        )
    })?;
    let scale = match suffix {
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
        exponent => 10f64.powi(exponent[1..].parse::<i32>().map_err(|_| {
            format!(
                "must be a quantity such as 500m, 2Gi or 1.5, got {}",
                shown(value)
            )
        })?),
    };
    Ok(number * scale)
}

/// A container's `resources` as the API server checks them: every quantity readable and not
/// negative, and each limit at least its request. Errors name `<field>.requests.<resource>`
/// or `<field>.limits.<resource>`.
pub fn resource_requirements(
    errors: &mut FieldErrors,
    field: &str,
    resources: &ResourceRequirements,
) {
    let read = |errors: &mut FieldErrors, kind: &str, map: Option<&BTreeMap<String, Quantity>>| {
        let mut values = BTreeMap::new();
        for (name, Quantity(q)) in map.into_iter().flatten() {
            let at = format!("{field}.{kind}.{name}");
            match quantity_value(q) {
                Ok(v) if v < 0.0 => {
                    errors.check(false, &at, format!("must not be negative, got {q:?}"))
                }
                Ok(v) => {
                    values.insert(name.clone(), (v, q.clone()));
                }
                Err(e) => errors.check(false, &at, e),
            }
        }
        values
    };
    let requests = read(errors, "requests", resources.requests.as_ref());
    let limits = read(errors, "limits", resources.limits.as_ref());
    for (name, (limit, written)) in &limits {
        if let Some((request, asked)) = requests.get(name)
            && limit < request
        {
            errors.check(
                false,
                &format!("{field}.limits.{name}"),
                format!("must be at least the request {asked:?}, got {written:?}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_follow_the_distribution_grammar() {
        for ok in [
            "busybox",
            "busybox:1.36",
            "registry.example/payments:1.4.2",
            "registry.example:5000/team/payments:v1.4.2-rc.1",
            "[::1]:5000/payments:1",
            "payments@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "Registry.Example/payments:1",
        ] {
            assert_eq!(image_reference(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            " ",
            "Payments:1",
            "registry.example/payments:",
            "registry.example/payments:1 2",
            "payments@sha256:abc",
            "payments:-x",
            "payments//x",
            "payments:1.0-é",
            "payments:ünicode",
        ] {
            assert!(image_reference(bad).is_err(), "{bad}");
        }
        let long = format!("registry.example/{}:1", "a".repeat(10_000));
        let error = image_reference(&long).err().unwrap_or_default();
        assert!(
            error.len() < 500,
            "the message does not repeat it all: {}",
            error.len()
        );
        assert!(image_reference(&format!("r.example/{}", "a".repeat(250))).is_err());
    }

    #[test]
    fn quantities_have_values() {
        for (q, v) in [
            ("500m", 0.5),
            ("2Gi", 2147483648.0),
            ("1.5", 1.5),
            ("1e3", 1000.0),
            ("128Mi", 134217728.0),
            ("2k", 2000.0),
            ("-1", -1.0),
        ] {
            assert_eq!(quantity_value(q), Ok(v), "{q}");
        }
        assert!(quantity_value("lots").is_err());
        assert!(quantity_value("1 Gi").is_err());
    }

    #[test]
    fn limits_below_requests_and_bad_quantities_are_named() {
        let resources: ResourceRequirements = serde_json::from_value(serde_json::json!({
            "requests": {"cpu": "500m", "memory": "lots"},
            "limits": {"cpu": "250m", "ephemeral-storage": "-1"}
        }))
        .unwrap();
        let mut errors = FieldErrors::default();
        resource_requirements(&mut errors, "spec.resources", &resources);
        let errors = errors.into_vec();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.resources.requests.memory",
                "spec.resources.limits.ephemeral-storage",
                "spec.resources.limits.cpu"
            ]
        );
        assert!(errors[2].message.contains("at least the request \"500m\""));
        let fine: ResourceRequirements = serde_json::from_value(serde_json::json!({
            "requests": {"cpu": "250m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "0.5Gi"}
        }))
        .unwrap();
        let mut errors = FieldErrors::default();
        resource_requirements(&mut errors, "spec.resources", &fine);
        assert!(errors.is_empty());
    }
}
