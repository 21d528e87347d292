//! The admission rules for a `BatchProcessor`: what the CRD schema and its CEL rule check, and
//! what only the operator knows (names that must fit the Jobs it creates, the cron schedule,
//! the threshold's form). The reconcile applies them before touching anything, so a spec that
//! got past admission is still refused with every bad field named, and nothing is applied.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use operator_core::FieldError;
use operator_core::validation::{self, FieldErrors, SpecRules};

use crate::crd::{BatchProcessorSpec, BlobConfig, Location, LocationType, SftpConfig};

/// The longest suffix a Job adds to the batch's name: the 10th retry of a run-now run,
/// `<name>-now-<8 hex>-retry-10`. A Job's name is also its pods' `job-name` label value, so
/// it must stay within 63 characters.
pub const LONGEST_JOB_SUFFIX: &str = "-now-00000000-retry-10";
/// The longest name a BatchProcessor can have (the tests build names of that length).
#[cfg(test)]
pub const MAX_NAME_LENGTH: usize = 63 - LONGEST_JOB_SUFFIX.len();

impl SpecRules for BatchProcessorSpec {
    /// Every problem with a resource's name and spec; empty when it can be realised.
    fn errors(&self, name: &str) -> Vec<FieldError> {
        let mut errors = FieldErrors::for_resource(name, LONGEST_JOB_SUFFIX);
        errors.push("spec.schedule", validation::cron_schedule(&self.schedule));
        errors.container(&self.image, self.resources.as_ref());
        errors.in_range("spec.batchSize", self.batch_size, 1..=1_000_000);
        errors.in_range("spec.parallelism", self.parallelism, 1..=100);
        location(&mut errors, "spec.input", &self.input);
        location(&mut errors, "spec.output", &self.output);
        if let Some(dead_letter) = &self.dead_letter {
            blob(&mut errors, "spec.deadLetter", dead_letter);
        }
        let retry = &self.retry;
        errors.in_range("spec.retry.maxAttempts", retry.max_attempts, 0..=10);
        errors.in_range("spec.retry.backoffLimit", retry.backoff_limit, 0..=20);
        errors.in_range("spec.retry.backoffSeconds", retry.backoff_seconds, 1..=1800);
        let kept = self.successful_jobs_history_limit;
        errors.in_range("spec.successfulJobsHistoryLimit", kept, 0..=100);
        let kept = self.failed_jobs_history_limit;
        errors.in_range("spec.failedJobsHistoryLimit", kept, 0..=100);
        if let Some(zone) = &self.time_zone {
            errors.push("spec.timeZone", validation::time_zone(zone));
        }
        if let Some(deadline) = self.active_deadline_seconds {
            errors.check(
                (60..=604_800).contains(&deadline),
                "spec.activeDeadlineSeconds",
                format!("must be between 60 and 604800 (a week), got {deadline}"),
            );
        }
        if let Some(threshold) = &self.failed_payments_threshold {
            errors.push(
                "spec.failedPaymentsThreshold",
                FailedPaymentsThreshold::parse(threshold),
            );
        }
        if let Some(email) = self
            .monitoring
            .as_ref()
            .and_then(|m| m.alert_email.as_ref())
        {
            let parts: Vec<&str> = email.split('@').collect();
            errors.check(
                parts.len() == 2
                    && !parts[0].is_empty()
                    && parts[1].contains('.')
                    && !email.contains(char::is_whitespace),
                "spec.monitoring.alertEmail",
                format!("must be an email address such as ops@example.com, got {email:?}"),
            );
        }
        errors.into_vec()
    }

    /// Valid but risky: what the webhook answers with a warning that `kubectl` shows.
    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.dead_letter.is_none() {
            warnings.push(
                "spec.deadLetter is not set: payments a run fails to process are kept nowhere for a replay"
                    .to_string(),
            );
        }
        warnings
    }
}

fn location(errors: &mut FieldErrors, field: &str, location: &Location) {
    match (location.type_, &location.sftp_config, &location.blob_config) {
        (LocationType::Sftp, Some(sftp), None) => {
            self::sftp(errors, &format!("{field}.sftpConfig"), sftp)
        }
        (LocationType::Azureblob, None, Some(blob)) => {
            self::blob(errors, &format!("{field}.blobConfig"), blob);
        }
        (LocationType::Sftp, _, _) => errors.check(
            false,
            field,
            "type sftp needs sftpConfig and takes no blobConfig",
        ),
        (LocationType::Azureblob, _, _) => errors.check(
            false,
            field,
            "type azureblob needs blobConfig and takes no sftpConfig",
        ),
    }
}

fn sftp(errors: &mut FieldErrors, field: &str, sftp: &SftpConfig) {
    errors.push(
        &format!("{field}.host"),
        validation::dns_subdomain(&sftp.host),
    );
    errors.check(
        (1..=65535).contains(&sftp.port),
        &format!("{field}.port"),
        format!("must be a port between 1 and 65535, got {}", sftp.port),
    );
    errors.check(
        sftp.path.starts_with('/'),
        &format!("{field}.path"),
        format!("must be an absolute path, got {:?}", sftp.path),
    );
    errors.push(
        &format!("{field}.secretName"),
        validation::dns_subdomain(&sftp.secret_name),
    );
}

fn blob(errors: &mut FieldErrors, field: &str, blob: &BlobConfig) {
    let account = &blob.storage_account;
    errors.check(
        (3..=24).contains(&account.len())
            && account
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        &format!("{field}.storageAccount"),
        format!("must be 3 to 24 lowercase letters and digits, got {account:?}"),
    );
    let container = &blob.container;
    errors.check(
        (3..=63).contains(&container.len())
            && container
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !container.starts_with('-')
            && !container.ends_with('-')
            && !container.contains("--"),
        &format!("{field}.container"),
        format!(
            "must be 3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit, got {container:?}"
        ),
    );
    errors.push(
        &format!("{field}.secretName"),
        validation::dns_subdomain(&blob.secret_name),
    );
}

/// `failedPaymentsThreshold`: more failed payments than this fail a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FailedPaymentsThreshold {
    Count(i64),
    /// Percent of the payments processed.
    Percent(f64),
}

impl Default for FailedPaymentsThreshold {
    /// 1% of the payments processed.
    fn default() -> Self {
        Self::Percent(1.0)
    }
}

impl FailedPaymentsThreshold {
    pub fn parse(value: &IntOrString) -> Result<Self, String> {
        match value {
            IntOrString::Int(n) if *n >= 0 => Ok(Self::Count(i64::from(*n))),
            IntOrString::String(s) => s
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<f64>().ok())
                .filter(|p| (0.0..=100.0).contains(p))
                .map(Self::Percent)
                .ok_or_else(|| {
                    format!(
                        "must be a count (50) or a percentage from 0% to 100% (\"1%\"), got {s:?}"
                    )
                }),
            IntOrString::Int(n) => Err(format!("must not be negative, got {n}")),
        }
    }

    /// Whether `failed` of `processed` payments exceed the threshold.
    pub fn exceeded(self, processed: i64, failed: i64) -> bool {
        match self {
            Self::Count(n) => failed > n,
            // Compared in integers scaled by 10^4, so 1% of 9847 is exactly 98.47.
            Self::Percent(p) => {
                let scaled = (p * 100.0).round() as i128;
                i128::from(failed) * 10_000 > scaled * i128::from(processed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::tests_support::seed;
    use operator_core::validation::fields;

    fn errors_of(name: &str, spec: &BatchProcessorSpec) -> Vec<String> {
        fields(&spec.errors(name))
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn the_seed_example_is_valid() {
        assert_eq!(seed().spec.errors("daily-payment-batch"), vec![]);
    }

    #[test]
    fn each_rule_names_its_field() {
        type Break = fn(&mut BatchProcessorSpec);
        let cases: Vec<(&str, Break)> = vec![
            ("spec.schedule", |s| s.schedule = "61 2 * * *".into()),
            ("spec.schedule", |s| s.schedule = "daily".into()),
            ("spec.image", |s| s.image = " ".into()),
            ("spec.batchSize", |s| s.batch_size = 0),
            ("spec.parallelism", |s| s.parallelism = 101),
            ("spec.input", |s| s.input.sftp_config = None),
            ("spec.input", |s| {
                s.input.blob_config = s.output.blob_config.clone();
            }),
            ("spec.output", |s| {
                s.output.sftp_config = s.input.sftp_config.clone();
            }),
            ("spec.input.sftpConfig.host", |s| {
                if let Some(c) = s.input.sftp_config.as_mut() {
                    c.host = "not a host".into();
                }
            }),
            ("spec.input.sftpConfig.path", |s| {
                if let Some(c) = s.input.sftp_config.as_mut() {
                    c.path = "incoming".into();
                }
            }),
            ("spec.output.blobConfig.storageAccount", |s| {
                if let Some(c) = s.output.blob_config.as_mut() {
                    c.storage_account = "Payments_Blob".into();
                }
            }),
            ("spec.output.blobConfig.container", |s| {
                if let Some(c) = s.output.blob_config.as_mut() {
                    c.container = "-bad".into();
                }
            }),
            ("spec.output.blobConfig.secretName", |s| {
                if let Some(c) = s.output.blob_config.as_mut() {
                    c.secret_name = "Blob_Creds".into();
                }
            }),
            ("spec.retry.maxAttempts", |s| s.retry.max_attempts = 11),
            ("spec.retry.backoffLimit", |s| s.retry.backoff_limit = -1),
            ("spec.retry.backoffSeconds", |s| s.retry.backoff_seconds = 0),
            ("spec.failedJobsHistoryLimit", |s| {
                s.failed_jobs_history_limit = 101;
            }),
            ("spec.timeZone", |s| s.time_zone = Some("not a zone".into())),
            ("spec.activeDeadlineSeconds", |s| {
                s.active_deadline_seconds = Some(5);
            }),
            ("spec.failedPaymentsThreshold", |s| {
                s.failed_payments_threshold = Some(IntOrString::String("150%".into()));
            }),
            ("spec.failedPaymentsThreshold", |s| {
                s.failed_payments_threshold = Some(IntOrString::Int(-1));
            }),
            ("spec.monitoring.alertEmail", |s| {
                if let Some(m) = s.monitoring.as_mut() {
                    m.alert_email = Some("ops".into());
                }
            }),
        ];
        for (field, break_it) in cases {
            let mut spec = seed().spec;
            break_it(&mut spec);
            assert_eq!(
                errors_of("daily-payment-batch", &spec),
                vec![field],
                "{spec:?}"
            );
        }
    }

    #[test]
    fn a_name_leaves_room_for_the_longest_job_name() {
        let spec = seed().spec;
        assert_eq!(spec.errors(&"a".repeat(MAX_NAME_LENGTH)), vec![]);
        assert_eq!(
            errors_of(&"a".repeat(MAX_NAME_LENGTH + 1), &spec),
            vec!["metadata.name"]
        );
        assert_eq!(
            format!("{}{LONGEST_JOB_SUFFIX}", "a".repeat(MAX_NAME_LENGTH)).len(),
            63
        );
    }

    #[test]
    fn the_threshold_is_a_count_or_a_percentage_of_processed() {
        let one_percent = FailedPaymentsThreshold::default();
        // The seed's last run: 24 of 9847 failed, under 1%.
        assert!(!one_percent.exceeded(9847, 24));
        assert!(!one_percent.exceeded(10_000, 100));
        assert!(one_percent.exceeded(10_000, 101));
        assert!(
            one_percent.exceeded(0, 1),
            "any failure of nothing processed"
        );
        let parse = |v: IntOrString| FailedPaymentsThreshold::parse(&v);
        assert_eq!(
            parse(IntOrString::Int(50)),
            Ok(FailedPaymentsThreshold::Count(50))
        );
        assert_eq!(
            parse(IntOrString::String("2.5%".into())),
            Ok(FailedPaymentsThreshold::Percent(2.5))
        );
        assert!(parse(IntOrString::String("2.5".into())).is_err());
        assert!(FailedPaymentsThreshold::Count(50).exceeded(1_000_000, 51));
        assert!(!FailedPaymentsThreshold::Count(50).exceeded(100, 50));
    }
}
