//! The CronJob `<name>` that starts each scheduled run, and the Jobs the operator starts
//! itself (a retry, a run-now), all from one Job template: an Indexed Job of `parallelism`
//! workers, each told its settings by env and its credentials by read-only Secret volumes,
//! reporting its counts as its termination message.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec, VolumeMount};
use kube::ResourceExt;
use kube::api::ObjectMeta;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{env, env_from_field, tmp_mount, tmp_volume};
use operator_core::pod_security::restricted_container_security;

use super::{ATTEMPT_LABEL, BATCH_LABEL, RUN_LABEL, WORKER_CONTAINER, child_labels};
use crate::crd::{BatchProcessor, BlobConfig, Location, SftpConfig};
use crate::runs::StartRun;

/// The pod template annotation that changes with every setting of a run.
pub const CONFIG_HASH: &str = "payments.io/config-hash";
/// Where the credentials of the input, the output and the dead letter are mounted.
pub const CREDENTIALS_ROOT: &str = "/var/run/secrets/payments.io";

/// The env of one side of the batch: the seed's names for its input (SFTP) and output
/// (Azure Blob), and the same names prefixed with `INPUT_`/`OUTPUT_` for the other pairings,
/// so no two settings share a name.
fn location_env(side: &str, location: &Location, out: &mut Vec<EnvVar>) {
    out.push(env(&format!("{side}_TYPE"), location.type_.as_str()));
    let seed_naming = matches!(
        (side, location.sftp_config.is_some()),
        ("INPUT", true) | ("OUTPUT", false)
    );
    let prefix = if seed_naming {
        String::new()
    } else {
        format!("{side}_")
    };
    if let Some(SftpConfig {
        host, port, path, ..
    }) = &location.sftp_config
    {
        out.push(env(&format!("{prefix}SFTP_HOST"), host));
        out.push(env(&format!("{prefix}SFTP_PORT"), port.to_string()));
        out.push(env(&format!("{prefix}SFTP_PATH"), path));
    }
    if let Some(blob) = &location.blob_config {
        blob_env(&format!("{prefix}BLOB"), blob, out);
    }
    out.push(env(
        &format!("{side}_CREDENTIALS_DIR"),
        format!("{CREDENTIALS_ROOT}/{}", side.to_lowercase()),
    ));
}

fn blob_env(prefix: &str, blob: &BlobConfig, out: &mut Vec<EnvVar>) {
    out.push(env(
        &format!("{prefix}_STORAGE_ACCOUNT"),
        &blob.storage_account,
    ));
    out.push(env(&format!("{prefix}_CONTAINER"), &blob.container));
}

fn secret_of(location: &Location) -> Option<&str> {
    location
        .sftp_config
        .as_ref()
        .map(|s| s.secret_name.as_str())
        .or_else(|| {
            location
                .blob_config
                .as_ref()
                .map(|b| b.secret_name.as_str())
        })
}

/// The Job template every run shares. `run` is `None` for the CronJob's template: its Jobs
/// learn their run ID (their own name) from the `job-name` label the Job controller sets.
fn job_spec(bp: &BatchProcessor, defaults: &WorkloadDefaults, run: Option<&StartRun>) -> JobSpec {
    let spec = &bp.spec;
    let mut envs = vec![
        env("BATCH_SIZE", spec.batch_size.to_string()),
        env("PARALLELISM", spec.parallelism.to_string()),
    ];
    location_env("INPUT", &spec.input, &mut envs);
    location_env("OUTPUT", &spec.output, &mut envs);
    let mut secrets = vec![
        ("input", secret_of(&spec.input)),
        ("output", secret_of(&spec.output)),
    ];
    if let Some(dead_letter) = &spec.dead_letter {
        blob_env("DEAD_LETTER", dead_letter, &mut envs);
        envs.push(env(
            "DEAD_LETTER_CREDENTIALS_DIR",
            format!("{CREDENTIALS_ROOT}/dead-letter"),
        ));
        secrets.push(("dead-letter", Some(dead_letter.secret_name.as_str())));
    }
    match run {
        Some(run) => {
            envs.push(env("BATCH_RUN_ID", &run.run));
            envs.push(env("BATCH_ATTEMPT", run.attempt.to_string()));
        }
        None => {
            let job_name = "metadata.labels['job-name']";
            envs.push(env_from_field("BATCH_RUN_ID", job_name));
            envs.push(env("BATCH_ATTEMPT", "1"));
        }
    }
    envs.push(env("HOME", "/tmp"));

    let mut volumes = vec![tmp_volume()];
    let mut mounts = vec![tmp_mount()];
    for (side, secret) in secrets {
        let Some(secret) = secret else { continue };
        let name = format!("{side}-credentials");
        volumes.push(operator_core::builder::secret_volume(&name, secret, 0o400));
        mounts.push(VolumeMount {
            name,
            mount_path: format!("{CREDENTIALS_ROOT}/{side}"),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }

    let worker = Container {
        name: WORKER_CONTAINER.into(),
        image: Some(spec.image.clone()),
        env: Some(envs),
        resources: spec
            .resources
            .clone()
            .or_else(|| defaults.default_resources.clone()),
        security_context: Some(restricted_container_security()),
        // A worker that crashes still leaves its last log lines as the message.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let mut pod_labels = defaults.default_labels.clone();
    pod_labels.insert(BATCH_LABEL.into(), bp.name_any());
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            restart_policy: Some(spec.retry.restart_policy.as_str().into()),
            security_context: Some(defaults.pod_security()),
            // The workers talk to SFTP and Blob Storage, never to the API server.
            automount_service_account_token: Some(false),
            containers: vec![worker],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
    };
    let mut job = JobSpec {
        completions: Some(spec.parallelism),
        parallelism: Some(spec.parallelism),
        completion_mode: Some("Indexed".into()),
        backoff_limit: Some(spec.retry.backoff_limit),
        active_deadline_seconds: spec.active_deadline_seconds,
        template,
        ..JobSpec::default()
    };
    let hash = config_hash(&job);
    if let Some(meta) = job.template.metadata.as_mut() {
        meta.annotations = Some(BTreeMap::from([(CONFIG_HASH.into(), hash)]));
    }
    job
}

fn config_hash(job: &JobSpec) -> String {
    let bytes = serde_json::to_vec(job).unwrap_or_default();
    operator_core::apply::short_digest([bytes.as_slice()])
}

/// How late a scheduled run may still start: one schedule period (at least a minute). A run
/// the hold made the CronJob miss starts when the hold ends, if that is within a period; an
/// unbounded window would let a long hold pile up more than the 100 missed times after which
/// the CronJob controller stops scheduling altogether.
pub fn starting_deadline_seconds(bp: &BatchProcessor) -> i64 {
    super::prometheus_rule::schedule_period(&bp.spec.schedule, bp.spec.time_zone.as_deref())
        .and_then(|p| i64::try_from(p.as_secs()).ok())
        .unwrap_or(86_400)
        .max(60)
}

/// The CronJob `<name>`; `hold` suspends it while the operator's own Job runs or waits to
/// (and with `spec.suspend`).
pub fn desired_cron_job(bp: &BatchProcessor, defaults: &WorkloadDefaults, hold: bool) -> CronJob {
    let spec = &bp.spec;
    let job = job_spec(bp, defaults, None);
    CronJob {
        metadata: ObjectMeta {
            name: Some(bp.name_any()),
            labels: Some(child_labels(bp, defaults)),
            ..ObjectMeta::default()
        },
        spec: Some(CronJobSpec {
            schedule: spec.schedule.clone(),
            // Only when the spec names one: a server before 1.25 refuses the field.
            time_zone: spec.time_zone.clone(),
            suspend: Some(hold),
            starting_deadline_seconds: Some(starting_deadline_seconds(bp)),
            concurrency_policy: Some(spec.concurrency_policy.as_str().into()),
            successful_jobs_history_limit: Some(spec.successful_jobs_history_limit),
            failed_jobs_history_limit: Some(spec.failed_jobs_history_limit),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(child_labels(bp, defaults)),
                    ..ObjectMeta::default()
                }),
                spec: Some(job),
            },
        }),
        status: None,
    }
}

/// A Job the operator starts: a retry of a run, or a run-now.
pub fn desired_run_job(bp: &BatchProcessor, defaults: &WorkloadDefaults, run: &StartRun) -> Job {
    let mut labels = child_labels(bp, defaults);
    labels.insert(RUN_LABEL.into(), run.run.clone());
    labels.insert(ATTEMPT_LABEL.into(), run.attempt.to_string());
    Job {
        metadata: ObjectMeta {
            name: Some(run.job.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(job_spec(bp, defaults, Some(run))),
        status: None,
    }
}

#[cfg(test)]
mod tests;
