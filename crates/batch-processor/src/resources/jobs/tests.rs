use super::*;
use crate::crd::tests_support::seed;
use crate::crd::{BatchProcessorSpec, BlobConfig, LocationType};
use crate::runs::{Cause, StartRun, retry_job_name, run_now_job_name};
use crate::validate::MAX_NAME_LENGTH;
use operator_core::pod_security::restricted_pod_security;
use operator_core::validation::SpecRules;
use proptest::prelude::*;

fn pod_spec(job: &JobSpec) -> PodSpec {
    job.template.spec.clone().unwrap_or_default()
}

fn env_of(job: &JobSpec) -> BTreeMap<String, EnvVar> {
    pod_spec(job).containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name.clone(), e))
        .collect()
}

fn value(env: &BTreeMap<String, EnvVar>, name: &str) -> Option<String> {
    env.get(name).and_then(|e| e.value.clone())
}

#[test]
fn the_cron_job_runs_the_seeds_batch_as_specified() {
    let bp = seed();
    let cron = desired_cron_job(&bp, &WorkloadDefaults::default(), false);
    assert_eq!(cron.metadata.name.as_deref(), Some("daily-payment-batch"));
    let spec = cron.spec.clone().unwrap_or_default();
    assert_eq!(spec.schedule, "0 2 * * *");
    assert_eq!(spec.suspend, Some(false));
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    assert_eq!(spec.successful_jobs_history_limit, Some(3));
    assert_eq!(spec.failed_jobs_history_limit, Some(10));
    assert_eq!(spec.time_zone, None, "sent only when the spec names one");
    assert_eq!(
        spec.starting_deadline_seconds,
        Some(86_400),
        "one period of a daily batch"
    );
    let job = spec.job_template.spec.clone().unwrap_or_default();
    assert_eq!(job.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((job.completions, job.parallelism), (Some(10), Some(10)));
    assert_eq!(job.backoff_limit, Some(5));
    let pod = pod_spec(&job);
    assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.security_context, Some(restricted_pod_security(None)));
    let worker = &pod.containers[0];
    assert_eq!(worker.name, WORKER_CONTAINER);
    assert_eq!(
        worker.image.as_deref(),
        Some("acr.azurecr.io/batch-processor:1.2.0")
    );
    assert_eq!(
        worker.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    assert_eq!(
        worker.security_context,
        Some(restricted_container_security())
    );
    assert_eq!(worker.resources, bp.spec.resources);

    let env = env_of(&job);
    for (name, expected) in [
        ("BATCH_SIZE", "10000"),
        ("PARALLELISM", "10"),
        ("INPUT_TYPE", "sftp"),
        ("SFTP_HOST", "sftp.partner.com"),
        ("SFTP_PORT", "22"),
        ("SFTP_PATH", "/incoming/payments/*.csv"),
        ("OUTPUT_TYPE", "azureblob"),
        ("BLOB_STORAGE_ACCOUNT", "paymentsblobstorage"),
        ("BLOB_CONTAINER", "processed-batches"),
        ("BATCH_ATTEMPT", "1"),
        (
            "INPUT_CREDENTIALS_DIR",
            "/var/run/secrets/payments.io/input",
        ),
    ] {
        assert_eq!(value(&env, name).as_deref(), Some(expected), "{name}");
    }
    let run_id = env.get("BATCH_RUN_ID").and_then(|e| e.value_from.clone());
    assert_eq!(
        run_id.and_then(|v| v.field_ref).map(|f| f.field_path),
        Some("metadata.labels['job-name']".into())
    );

    // Credentials only as read-only Secret volumes.
    let secrets: Vec<String> = pod
        .volumes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.secret.and_then(|s| s.secret_name))
        .collect();
    assert_eq!(secrets, ["sftp-credentials", "blob-credentials"]);
    for mount in worker.volume_mounts.iter().flatten() {
        if mount.name.ends_with("-credentials") {
            assert_eq!(mount.read_only, Some(true), "{}", mount.name);
        }
    }
    let annotations = job
        .template
        .metadata
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    assert_eq!(annotations.get(CONFIG_HASH).map(String::len), Some(16));
}

#[test]
fn a_held_run_may_start_late_by_one_period_at_least_a_minute() {
    let mut bp = seed();
    bp.spec.schedule = "*/15 * * * *".into();
    assert_eq!(starting_deadline_seconds(&bp), 900);
    bp.spec.schedule = "* * * * *".into();
    assert_eq!(starting_deadline_seconds(&bp), 60);
    bp.spec.schedule = "0 2 * * MON-FRI".into();
    assert_eq!(starting_deadline_seconds(&bp), 3 * 86_400);
}

#[test]
fn the_config_hash_follows_the_run_settings_not_the_hold() {
    let bp = seed();
    let hash = |bp: &BatchProcessor, hold| {
        desired_cron_job(bp, &WorkloadDefaults::default(), hold)
            .spec
            .and_then(|s| s.job_template.spec)
            .and_then(|j| j.template.metadata)
            .and_then(|m| m.annotations)
            .and_then(|a| a.get(CONFIG_HASH).cloned())
    };
    assert_eq!(hash(&bp, false), hash(&bp, true));
    let mut changed = bp.clone();
    changed.spec.batch_size = 5000;
    assert_ne!(hash(&bp, false), hash(&changed, false));
}

#[test]
fn the_operators_jobs_carry_their_run_and_attempt() {
    let bp = seed();
    let run = StartRun {
        job: retry_job_name("daily-payment-batch-29000000", 2),
        run: "daily-payment-batch-29000000".into(),
        attempt: 2,
        cause: Cause::Retry,
    };
    let job = desired_run_job(&bp, &WorkloadDefaults::default(), &run);
    assert_eq!(
        job.metadata.name.as_deref(),
        Some("daily-payment-batch-29000000-retry-1")
    );
    let labels = job.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(RUN_LABEL).map(String::as_str),
        Some("daily-payment-batch-29000000")
    );
    assert_eq!(labels.get(ATTEMPT_LABEL).map(String::as_str), Some("2"));
    assert_eq!(
        labels.get(BATCH_LABEL).map(String::as_str),
        Some("daily-payment-batch")
    );
    let env = env_of(&job.spec.unwrap_or_default());
    assert_eq!(
        value(&env, "BATCH_RUN_ID").as_deref(),
        Some("daily-payment-batch-29000000")
    );
    assert_eq!(value(&env, "BATCH_ATTEMPT").as_deref(), Some("2"));
}

#[test]
fn other_pairings_of_input_and_output_get_prefixed_names() {
    let mut bp = seed();
    let sftp = bp.spec.input.sftp_config.take();
    bp.spec.input.type_ = LocationType::Azureblob;
    bp.spec.input.blob_config = bp.spec.output.blob_config.clone();
    bp.spec.output.type_ = LocationType::Sftp;
    bp.spec.output.blob_config = None;
    bp.spec.output.sftp_config = sftp;
    assert_eq!(bp.spec.errors("daily-payment-batch"), vec![]);
    let cron = desired_cron_job(&bp, &WorkloadDefaults::default(), false);
    let env = env_of(
        &cron
            .spec
            .and_then(|s| s.job_template.spec)
            .unwrap_or_default(),
    );
    assert!(env.contains_key("INPUT_BLOB_STORAGE_ACCOUNT"));
    assert!(env.contains_key("OUTPUT_SFTP_HOST"));
    assert!(!env.contains_key("SFTP_HOST") && !env.contains_key("BLOB_CONTAINER"));
}

fn arb_spec() -> impl Strategy<Value = BatchProcessorSpec> {
    (
        1..=1_000_000i32,
        1..=100i32,
        0..=10i32,
        0..=20i32,
        proptest::option::of(60..=604_800i64),
        any::<bool>(),
        proptest::option::of("[a-z]{3,10}"),
    )
        .prop_map(|(batch, workers, attempts, limit, deadline, swap, dead)| {
            let mut spec = seed().spec;
            spec.batch_size = batch;
            spec.parallelism = workers;
            spec.retry.max_attempts = attempts;
            spec.retry.backoff_limit = limit;
            spec.active_deadline_seconds = deadline;
            if swap {
                std::mem::swap(&mut spec.input, &mut spec.output);
            }
            spec.dead_letter = dead.map(|container| BlobConfig {
                storage_account: "deadletters".into(),
                container,
                secret_name: "dead-letter-credentials".into(),
            });
            spec
        })
}

proptest! {
    /// Any valid spec builds a CronJob whose env names are unique, with no credential among
    /// them, every Secret mounted read-only, and Jobs whose names fit a label value.
    #[test]
    fn any_valid_spec_builds_a_sound_job(spec in arb_spec(), name_len in 1..=MAX_NAME_LENGTH) {
        let name = "b".repeat(name_len);
        prop_assume!(spec.errors(&name).is_empty());
        let mut bp = seed();
        bp.metadata.name = Some(name.clone());
        bp.spec = spec.clone();
        let cron = desired_cron_job(&bp, &WorkloadDefaults::default(), false);
        let job = cron.spec.and_then(|s| s.job_template.spec).unwrap_or_default();
        let worker = &pod_spec(&job).containers[0];
        let names: Vec<&str> = worker.env.iter().flatten().map(|e| e.name.as_str()).collect();
        let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
        prop_assert_eq!(names.len(), unique.len());
        for e in worker.env.iter().flatten() {
            prop_assert!(!e.name.contains("SECRET") && !e.name.contains("PASSWORD"));
        }
        let volumes = pod_spec(&job).volumes.unwrap_or_default();
        let secrets = volumes.iter().filter(|v| v.secret.is_some()).count();
        prop_assert_eq!(secrets, 2 + usize::from(spec.dead_letter.is_some()));
        prop_assert_eq!(job.completions, Some(spec.parallelism));
        let longest = retry_job_name(&run_now_job_name(&name, "any"), 11);
        prop_assert!(longest.len() <= 63, "{}", longest);
    }
}
