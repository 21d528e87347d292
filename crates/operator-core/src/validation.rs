//! Checks more than one operator's admission rules need, each returning what is wrong in
//! words a user can act on. Operators collect them into [`crate::FieldError`]s.

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
