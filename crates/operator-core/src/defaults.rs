//! CRD field defaults, each declared once, on its field:
//! `#[serde(default = "operator_core::defaults::int::<3>")]` for a number, `seconds::<30>`
//! (`minutes`, `millis`) for a duration, `yes` for an on-by-default switch. serde fills them in and schemars writes them into the CRD schema,
//! so `kubectl explain` and the operator agree. A struct whose fields all have defaults gets
//! its `Default` from [`from_fields`] rather than a second list of the same values.

use serde::de::DeserializeOwned;

/// The number `N`, as a field default.
pub const fn int<const N: i32>() -> i32 {
    N
}

/// The number `N`, as a field default of a 64-bit field.
pub const fn int64<const N: i64>() -> i64 {
    N
}

/// `N` seconds, as a duration field's default (`"30s"`).
pub fn seconds<const N: u32>() -> crate::duration::GoDuration {
    format!("{N}s").into()
}

/// `N` minutes, as a duration field's default (`"5m"`).
pub fn minutes<const N: u32>() -> crate::duration::GoDuration {
    format!("{N}m").into()
}

/// `N` milliseconds, as a duration field's default (`"100ms"`).
pub fn millis<const N: u32>() -> crate::duration::GoDuration {
    format!("{N}ms").into()
}

/// `true`, as the default of a switch that is on unless turned off.
pub const fn yes() -> bool {
    true
}

/// `impl Default` for CRD structs whose every field has a default: [`from_fields`].
#[macro_export]
macro_rules! default_from_fields {
    ($($type:ty),+ $(,)?) => {
        $(impl Default for $type {
            fn default() -> Self {
                $crate::defaults::from_fields()
            }
        })+
    };
}

/// The value serde gives `T` from an empty object: every field at its declared default.
///
/// # Panics
/// When a field of `T` has no default: a programming error, which each operator's tests
/// of its defaults catch.
pub fn from_fields<T: DeserializeOwned>() -> T {
    match serde_json::from_value(serde_json::Value::Object(serde_json::Map::new())) {
        Ok(value) => value,
        Err(e) => panic!(
            "{} has a field without a default ({e})",
            std::any::type_name::<T>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Limits {
        #[serde(default = "seconds::<30>")]
        timeout: crate::duration::GoDuration,
        #[serde(default = "int::<3>")]
        attempts: i32,
        #[serde(default = "int64::<30>")]
        seconds: i64,
        #[serde(default = "yes")]
        enabled: bool,
    }

    #[test]
    fn a_struct_of_defaulted_fields_defaults_to_each_fields_default() {
        let limits: Limits = from_fields();
        assert_eq!(
            limits,
            Limits {
                timeout: "30s".into(),
                attempts: 3,
                seconds: 30,
                enabled: true
            }
        );
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Required {
        name: String,
    }

    #[test]
    #[should_panic(expected = "has a field without a default")]
    fn a_field_without_a_default_is_a_programming_error_named_at_once() {
        let _: Required = from_fields();
    }
}
