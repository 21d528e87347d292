//! Checks more than one operator's admission rules need, each returning what is wrong in
//! words a user can act on, and [`FieldErrors`], which collects them per field. An
//! operator's `validate.rs` is its rules written with these; the reconcile and (later) the
//! admission webhook both call it.

use std::sync::LazyLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceRequirements;
use regex::Regex;

use crate::FieldError;
use crate::duration::GoDuration;

mod container;

pub use container::{
    MAX_IMAGE_NAME, MAX_IMAGE_REFERENCE, image_reference, quantity_value, resource_requirements,
};

/// The longest drain a deletion waits for (a finalizer's bounded work): an hour.
pub const MAX_DRAIN_TIMEOUT: Duration = Duration::from_secs(3600);

/// The rules of an operator's `validate.rs` for its spec: what the admission webhook checks
/// at the door and every reconcile checks again (a spec written before a rule existed, or
/// while the webhook was down, still cannot run).
pub trait SpecRules {
    /// Every field that breaks a rule, named, and what to write instead. `name` is the
    /// resource's: its children's names grow from it.
    fn errors(&self, name: &str) -> Vec<FieldError>;

    /// What is valid but risky (a single replica, no stop-loss), for the user to reconsider.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Every problem found in one spec, each with its field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// Starts a spec's checks with its resource's name (see [`resource_name`]): the first
    /// rule of every operator, since every child's name grows from it.
    pub fn for_resource(name: &str, longest_suffix: &str) -> Self {
        let mut errors = Self::default();
        errors.push("metadata.name", resource_name(name, longest_suffix));
        errors
    }

    /// Checks the container a spec describes: `spec.image` and, when given,
    /// `spec.resources`.
    pub fn container(&mut self, image: &str, resources: Option<&ResourceRequirements>) {
        self.push("spec.image", image_reference(image));
        if let Some(resources) = resources {
            resource_requirements(self, "spec.resources", resources);
        }
    }

    /// Records `message` for `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) {
        if !ok {
            self.0.push(FieldError::new(field, message));
        }
    }

    /// Records "must be between A and B, got V" for `field` unless `value` is in `range`.
    pub fn in_range<T>(&mut self, field: &str, value: T, range: std::ops::RangeInclusive<T>)
    where
        T: PartialOrd + std::fmt::Display,
    {
        if !range.contains(&value) {
            let (low, high) = range.into_inner();
            let message = format!("must be between {low} and {high}, got {value}");
            self.0.push(FieldError::new(field, message));
        }
    }

    /// Records the problem a check returned, if any; the checked value otherwise.
    pub fn push<T>(&mut self, field: &str, checked: Result<T, String>) -> Option<T> {
        match checked {
            Ok(value) => Some(value),
            Err(message) => {
                self.0.push(FieldError::new(field, message));
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
}

/// The fields a list of errors names, in order.
pub fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

fn regex(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

static DNS_LABEL: LazyLock<Option<Regex>> =
    LazyLock::new(|| regex(r"^[a-z]([-a-z0-9]*[a-z0-9])?$"));
static DNS_SUBDOMAIN: LazyLock<Option<Regex>> =
    LazyLock::new(|| regex(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"));
static LABEL_VALUE: LazyLock<Option<Regex>> =
    LazyLock::new(|| regex(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"));
static QUANTITY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    regex(
        r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$",
    )
});
static TIME_ZONE: LazyLock<Option<Regex>> =
    LazyLock::new(|| regex(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"));

fn matches(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(s))
}

/// A resource's name whose children add `longest_suffix` (`-deployment`) to it: a DNS label
/// with room for the suffix within 63 characters.
pub fn resource_name(name: &str, longest_suffix: &str) -> Result<(), String> {
    let max = 63 - longest_suffix.len();
    if name.len() <= max && matches(&DNS_LABEL, name) {
        Ok(())
    } else {
        Err(format!(
            "must be a DNS label (lowercase letters, digits, '-', starting with a letter) of at most {max} characters, got {name:?}"
        ))
    }
}

/// A DNS subdomain (RFC 1123), as the names of most objects are: a ServiceAccount, a Secret.
pub fn dns_subdomain(value: &str) -> Result<(), String> {
    if value.len() <= 253 && matches(&DNS_SUBDOMAIN, value) {
        Ok(())
    } else {
        Err(format!(
            "must be a DNS name (lowercase letters, digits, '-' and '.', at most 253), got {value:?}"
        ))
    }
}

/// A label value: letters, digits, `-`, `_`, `.`, at most 63, starting and ending
/// alphanumeric (empty allowed only when `allow_empty`).
pub fn label_value(value: &str, allow_empty: bool) -> Result<(), String> {
    if (allow_empty || !value.is_empty()) && value.len() <= 63 && matches(&LABEL_VALUE, value) {
        Ok(())
    } else {
        Err(format!(
            "must be a label value (letters, digits, '-', '_', '.', at most 63), got {value:?}"
        ))
    }
}

/// A duration of a number and one unit (`ms`, `s`, `m`, `h`), as Kubernetes and Go write
/// them: `30s`, `5m`. `units` names the units allowed in this field.
pub fn duration(value: &str, units: &[&str]) -> Result<Duration, String> {
    let unit_ok = value
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .to_string();
    match crate::duration::go_duration(value) {
        Ok(d) if units.contains(&unit_ok.as_str()) => Ok(d),
        _ => Err(format!(
            "must be a number and a unit of {} (e.g. 30{}), got {value:?}",
            units.join(", "),
            units.first().copied().unwrap_or("s")
        )),
    }
}

/// An `https://` URL with a host.
pub fn https_url(value: &str) -> Result<(), String> {
    let host = value
        .strip_prefix("https://")
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default())
        .unwrap_or_default();
    let host_name =
        host.rsplit_once(':').map_or(
            host,
            |(h, port)| {
                if port.parse::<u16>().is_ok() { h } else { host }
            },
        );
    if !host_name.is_empty() && !host_name.contains(char::is_whitespace) {
        Ok(())
    } else {
        // A URL that carries a credential is not repeated in the message.
        match crate::credentials::url_credentials(value) {
            Ok(()) => Err(format!(
                "must be an https:// URL with a host, got {value:?}"
            )),
            Err(_) => Err("must be an https:// URL with a host".into()),
        }
    }
}

/// A duration field that must be longer than zero (a timeout, a backoff, an interval).
pub fn positive_duration(value: &GoDuration) -> Result<Duration, String> {
    match value.read()? {
        Duration::ZERO => Err(format!("must be longer than 0, got {:?}", value.as_str())),
        d => Ok(d),
    }
}

/// How long a deletion waits for in-flight work (`drainTimeout`): a Go duration longer than
/// zero and at most [`MAX_DRAIN_TIMEOUT`], so a finalizer's work stays bounded.
pub fn drain_timeout(value: &GoDuration) -> Result<Duration, String> {
    let d = positive_duration(value)?;
    if d > MAX_DRAIN_TIMEOUT {
        Err(format!(
            "must be at most 1h (a deletion waits this long for in-flight work, and no longer), got {value:?}"
        ))
    } else {
        Ok(d)
    }
}

/// A resource quantity (`500m`, `2Gi`, `1.5`).
pub fn quantity(value: &str) -> Result<(), String> {
    if matches(&QUANTITY, value) {
        Ok(())
    } else {
        Err(format!(
            "must be a quantity such as 500m, 2Gi or 1.5, got {value:?}"
        ))
    }
}

/// The IANA time zone database, embedded in the binary: every machine (and the webhook,
/// and the operator) agrees on the names, whatever the host's zoneinfo holds.
static ZONES: LazyLock<jiff::tz::TimeZoneDatabase> =
    LazyLock::new(jiff::tz::TimeZoneDatabase::bundled);

/// An IANA time zone name as the API server's CronJob validation accepts it
/// (`Europe/London`, `Etc/UTC`): a name in the time zone database, exactly as written there,
/// and not `Local` (the API server refuses a zone that depends on the node).
pub fn time_zone(value: &str) -> Result<(), String> {
    let known = || {
        ZONES
            .get(value)
            .ok()
            .and_then(|tz| tz.iana_name().map(|name| name == value))
            .unwrap_or(false)
    };
    if value != "Local" && matches(&TIME_ZONE, value) && known() {
        Ok(())
    } else {
        Err(format!(
            "must be an IANA time zone name such as \"Europe/London\" or \"Etc/UTC\", got {value:?}"
        ))
    }
}

/// A name within a resource's spec that names something else by it (a partner's files, a
/// saga's steps): an RFC 1123 label, in the CRD schema so the API server names the field.
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A five-field cron schedule or a `@` macro, as the CronJob controller accepts: the CRD
/// schema's first check (the API server names the field); [`cron_schedule`] parses it.
pub const CRON_PATTERN: &str = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9*/,?LW#A-Za-z-]+( +[0-9*/,?LW#A-Za-z-]+){4})$";

/// The five fields of a cron schedule, with what each allows.
const CRON_FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "0-7 or SUN-SAT"),
];

/// A standard five-field cron schedule or an `@` macro (`@daily`), checked with a real cron
/// parser; the error names the field that is wrong and what it allows.
pub fn cron_schedule(schedule: &str) -> Result<(), String> {
    let schedule = schedule.trim();
    if schedule.starts_with('@') {
        return schedule
            .parse::<croner::Cron>()
            .map(|_| ())
            .map_err(|e| format!("{schedule:?} is not a cron macro: {e}"));
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != CRON_FIELDS.len() {
        return Err(format!(
            "must have five fields (minute hour day-of-month month day-of-week), got {} in {schedule:?}",
            fields.len()
        ));
    }
    for (i, ((name, allowed), field)) in CRON_FIELDS.iter().zip(&fields).enumerate() {
        let mut alone = vec!["*"; CRON_FIELDS.len()];
        alone[i] = field;
        if let Err(e) = alone.join(" ").parse::<croner::Cron>() {
            let why = e.to_string();
            let why = why.strip_prefix("Component error: ").unwrap_or(&why);
            return Err(format!(
                "field {} ({name}) {field:?} is invalid: {}; it allows {allowed}",
                i + 1,
                why.trim_end_matches('.').to_lowercase()
            ));
        }
    }
    schedule
        .parse::<croner::Cron>()
        .map(|_| ())
        .map_err(|e| format!("{schedule:?} is not a cron schedule: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_leave_room_for_the_childrens_suffixes() {
        assert_eq!(resource_name(&"a".repeat(52), "-deployment"), Ok(()));
        assert!(resource_name(&"a".repeat(53), "-deployment").is_err());
        assert!(resource_name("9lives", "").is_err());
        assert!(resource_name("Upper", "").is_err());
        assert_eq!(dns_subdomain("payment-gateway.sa"), Ok(()));
        assert!(dns_subdomain("-x").is_err());
    }

    #[test]
    fn values_durations_urls_and_quantities() {
        assert_eq!(label_value("1.5.0", false), Ok(()));
        assert!(label_value("", false).is_err());
        assert_eq!(label_value("", true), Ok(()));
        assert_eq!(
            duration("5m", &["s", "m", "h"]),
            Ok(Duration::from_secs(300))
        );
        assert!(duration("5d", &["s", "m", "h"]).is_err());
        assert!(duration("100ms", &["s", "m", "h"]).is_err());
        assert_eq!(
            duration("100ms", &["ms", "s", "m"]),
            Ok(Duration::from_millis(100))
        );
        assert_eq!(https_url("https://bank.example:8443/health"), Ok(()));
        assert!(https_url("http://bank.example").is_err());
        assert!(https_url("https://").is_err());
        assert_eq!(quantity("500m"), Ok(()));
        assert_eq!(quantity("2Gi"), Ok(()));
        assert!(quantity("2 GB").is_err());
        assert_eq!(time_zone("Europe/London"), Ok(()));
        assert_eq!(time_zone("Etc/UTC"), Ok(()));
        assert_eq!(time_zone("America/Argentina/Buenos_Aires"), Ok(()));
        for unknown in ["not a zone", "Mars/Olympus", "europe/london", "Local", ""] {
            assert!(time_zone(unknown).is_err(), "{unknown}");
        }
        let mut errors = FieldErrors::default();
        errors.check(false, "spec.a", "is wrong");
        errors.push("spec.b", quantity("x"));
        errors.push("spec.c", quantity("1"));
        let fields: Vec<String> = errors.into_vec().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["spec.a", "spec.b"]);
    }

    #[test]
    fn a_bad_schedule_names_the_field_and_its_range() {
        assert_eq!(cron_schedule("0 2 * * *"), Ok(()));
        assert_eq!(cron_schedule("@daily"), Ok(()));
        assert_eq!(cron_schedule("*/15 9-17 * JAN-MAR MON-FRI"), Ok(()));
        let minute = cron_schedule("61 2 * * *").err().unwrap_or_default();
        assert_eq!(
            minute,
            "field 1 (minute) \"61\" is invalid: number out of bounds; it allows 0-59"
        );
        assert!(
            cron_schedule("0 25 * * *")
                .err()
                .is_some_and(|e| e.starts_with("field 2 (hour)") && e.ends_with("0-23"))
        );
        assert!(
            cron_schedule("0 2 * 13 *")
                .err()
                .is_some_and(|e| e.starts_with("field 4 (month)"))
        );
        assert!(
            cron_schedule("0 2 * *")
                .err()
                .is_some_and(|e| e.contains("five fields"))
        );
    }
}
