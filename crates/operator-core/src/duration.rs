//! Durations as specs and config files write them (`30s`, `1m30s`, `250ms`, `1.5h`): one
//! parser for the whole product, and [`GoDuration`], the CRD field type that is read once,
//! when the object is deserialized, instead of at every use.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Go duration as seed 001's CRD writes it: the schema's pattern, so the API server names
/// the field; [`go_duration`] reads it.
pub const GO_DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// A Go duration ([`GO_DURATION_PATTERN`]): one or more number-and-unit pairs, summed,
/// exactly (no floating point: `100ms` is 100 ms).
pub fn go_duration(value: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "must be a duration such as 30s, 1m30s or 250ms (units ns, us, ms, s, m, h), got {value:?}"
        )
    };
    if value.is_empty() {
        return Err(bad());
    }
    let mut rest = value;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || number.ends_with('.') || fraction.contains('.') {
            return Err(bad());
        }
        let whole: u128 = whole.parse().map_err(|_| bad())?;
        // A fraction finer than a nanosecond adds nothing; 19 digits keep the sum in range.
        let digits = &fraction[..fraction.len().min(19)];
        let part = match digits {
            "" => 0,
            d => d.parse::<u128>().map_err(|_| bad())? * per_unit / 10u128.pow(d.len() as u32),
        };
        nanos = whole
            .checked_mul(per_unit)
            .and_then(|n| n.checked_add(part))
            .and_then(|n| n.checked_add(nanos))
            .ok_or_else(bad)?;
        rest = after;
    }
    let seconds = u64::try_from(nanos / 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(seconds, (nanos % 1_000_000_000) as u32))
}

/// A duration field of a CRD: kept as the user wrote it (so it round-trips, and messages
/// quote it) and read once, when the object is deserialized. An unreadable value still
/// deserializes — one bad field must not stop a watch from listing every other object —
/// and [`GoDuration::read`] says what is wrong with it, for validation to report.
#[derive(Clone, Debug)]
pub struct GoDuration {
    written: String,
    value: Option<Duration>,
}

impl GoDuration {
    pub fn new(written: impl Into<String>) -> Self {
        let written = written.into();
        let value = go_duration(&written).ok();
        Self { written, value }
    }

    /// The value as written in the spec.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// The duration, or what is wrong with the value as written.
    pub fn read(&self) -> Result<Duration, String> {
        self.value.ok_or_else(|| {
            go_duration(&self.written)
                .err()
                .unwrap_or_else(|| format!("is unreadable: {:?}", self.written))
        })
    }

    /// The duration; `fallback` for a value validation refuses, for the paths that run
    /// whatever the spec says (a deletion's drain).
    pub fn or(&self, fallback: Duration) -> Duration {
        self.value.unwrap_or(fallback)
    }
}

impl From<&str> for GoDuration {
    fn from(written: &str) -> Self {
        Self::new(written)
    }
}

impl From<String> for GoDuration {
    fn from(written: String) -> Self {
        Self::new(written)
    }
}

/// Two durations are the same field value when they are written the same way.
impl PartialEq for GoDuration {
    fn eq(&self, other: &Self) -> bool {
        self.written == other.written
    }
}

impl Eq for GoDuration {}

impl PartialEq<&str> for GoDuration {
    fn eq(&self, other: &&str) -> bool {
        self.written == *other
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.written)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

impl JsonSchema for GoDuration {
    fn schema_name() -> Cow<'static, str> {
        "GoDuration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": GO_DURATION_PATTERN})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_are_read_exactly() {
        assert_eq!(go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(go_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(go_duration("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(
            go_duration("2h45m10.5s"),
            Ok(Duration::from_millis(9_910_500))
        );
        assert_eq!(go_duration("1µs"), Ok(Duration::from_micros(1)));
        for bad in [
            "",
            "30",
            "5d",
            "s",
            ".5s",
            "5.s",
            "1.2.3s",
            "1 s",
            "-1s",
            "99999999999999999999999h",
        ] {
            assert!(go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_duration_field_round_trips_as_written_and_is_read_once() {
        let d: GoDuration = serde_json::from_value(serde_json::json!("1m30s")).unwrap();
        assert_eq!(d.read(), Ok(Duration::from_secs(90)));
        assert_eq!(serde_json::to_value(&d).unwrap(), "1m30s");
        assert_eq!(d, "1m30s");
        assert_eq!(d.to_string(), "1m30s");
    }

    #[test]
    fn an_unreadable_duration_deserializes_and_says_what_is_wrong() {
        let d: GoDuration = serde_json::from_value(serde_json::json!("soon")).unwrap();
        assert!(d.read().unwrap_err().contains("\"soon\""));
        assert_eq!(d.or(Duration::from_secs(30)), Duration::from_secs(30));
        assert_eq!(serde_json::to_value(&d).unwrap(), "soon");
    }

    #[test]
    fn the_schema_is_a_string_with_the_pattern() {
        let schema = schemars::schema_for!(GoDuration);
        assert_eq!(schema.get("type"), Some(&serde_json::json!("string")));
        assert_eq!(
            schema.get("pattern"),
            Some(&serde_json::json!(GO_DURATION_PATTERN))
        );
    }
}
