//! Backups: when `backup.enabled`, a CronJob `<name>-backup` runs on `backup.schedule` the
//! operator's own image as `payment-service-operator backup` (see [`crate::backup`]): it
//! exports the PaymentService and its rendered children as YAML to the PersistentVolumeClaim
//! `<name>-backups` (one directory per run, `/backups/<UTC timestamp>/`), and deletes exports
//! older than `backup.retention` days. The Job runs as its own ServiceAccount, bound to a Role
//! that can read only this service's objects. docs/payment-service.md says how to restore.
//!
//! The claim outlives the backups being switched off (it is not pruned) and, because the
//! finalizer releases it, the PaymentService itself.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    PodSpec, PodTemplateSpec, ResourceRequirements, ServiceAccount, Volume,
    VolumeResourceRequirements,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{self, Labels, mount, read_only_mount};
use operator_core::pod_security::restricted_container_security;

use super::{backup_name, backup_volume_name, child_labels};
use crate::backup::default_branch;
use crate::crd::{Backup, PaymentService};

/// Size of the claim the exports go to.
pub const BACKUP_VOLUME_SIZE: &str = "1Gi";

/// The backup objects of one service.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupChildren {
    pub cron_job: CronJob,
    pub service_account: ServiceAccount,
    pub role: Role,
    pub role_binding: RoleBinding,
    pub volume: PersistentVolumeClaim,
}

fn read(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    }
}

pub fn desired_backup(
    ps: &PaymentService,
    backup: &Backup,
    defaults: &WorkloadDefaults,
    image: &str,
) -> BackupChildren {
    let service = ps.name_any();
    let name = backup_name(&service);
    let labels = child_labels(ps, defaults);
    // The Job's pods must not carry `app`: the Service and the budget select on it.
    let mut pod_labels = defaults.default_labels.clone();
    pod_labels.insert("app.kubernetes.io/component".into(), "backup".into());
    pod_labels.insert("payments.io/backup-of".into(), service.clone());
    let meta = |name: String| builder::meta(name, labels.clone());

    let container = export_container(ps, backup, image);

    let cron_job = CronJob {
        metadata: meta(name.clone()),
        spec: Some(CronJobSpec {
            schedule: backup.schedule.clone(),
            // Only when the spec names one: a server before 1.25 refuses the field.
            time_zone: backup.time_zone.clone(),
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(3600),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    active_deadline_seconds: Some(900),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(pod_labels),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(PodSpec {
                            containers: vec![container],
                            restart_policy: Some("OnFailure".into()),
                            service_account_name: Some(name.clone()),
                            security_context: Some(defaults.pod_security()),
                            volumes: Some(volumes(&service, backup)),
                            ..PodSpec::default()
                        }),
                    },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    };

    let (role, role_binding) = access(ps, &name, &labels);
    let volume = export_volume(&service, &labels);
    BackupChildren {
        cron_job,
        service_account: ServiceAccount {
            metadata: meta(name),
            ..ServiceAccount::default()
        },
        role,
        role_binding,
        volume,
    }
}

/// Where the Git credentials are mounted in the backup Job.
const GIT_CREDENTIALS: &str = "/etc/backup-git";

/// The claim, and the Git credentials Secret when there is a Git target.
fn volumes(service: &str, backup: &Backup) -> Vec<Volume> {
    let mut volumes = vec![Volume {
        name: "backups".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: backup_volume_name(service),
            read_only: None,
        }),
        ..Volume::default()
    }];
    if let Some(git) = &backup.git {
        volumes.push(builder::secret_volume(
            "git-credentials",
            &git.credentials_secret,
            0o440,
        ));
    }
    volumes
}

/// The container that exports the service's configuration to the claim: the operator's own
/// binary, whose image's entrypoint it is.
fn export_container(ps: &PaymentService, backup: &Backup, image: &str) -> Container {
    let q = |s: &str| Quantity(s.to_string());
    let args = [
        "backup".to_string(),
        format!("--service={}", ps.name_any()),
        format!("--namespace={}", ps.namespace().unwrap_or_default()),
        format!("--retention-days={}", backup.retention),
        "--to=/backups".to_string(),
    ];
    let mut args = Vec::from(args);
    let mut mounts = vec![mount("backups", "/backups")];
    if let Some(git) = &backup.git {
        let namespace = ps.namespace().unwrap_or_default();
        let branch = git.branch.clone();
        let branch = branch.unwrap_or_else(|| default_branch(&namespace, &ps.name_any()));
        args.push(format!("--git-url={}", git.url));
        args.push(format!("--git-branch={branch}"));
        args.push(format!("--git-credentials={GIT_CREDENTIALS}"));
        mounts.push(read_only_mount("git-credentials", GIT_CREDENTIALS));
    }
    Container {
        name: "backup".into(),
        image: Some(image.into()),
        args: Some(args),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), q("50m")),
                ("memory".to_string(), q("32Mi")),
            ])),
            limits: Some(BTreeMap::from([("memory".to_string(), q("128Mi"))])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(restricted_container_security()),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// What the export may read: the service itself, and lists of its kinds of children.
fn access(ps: &PaymentService, name: &str, labels: &Labels) -> (Role, RoleBinding) {
    let service = ps.name_any();
    let meta = || builder::meta(name, labels.clone());
    let role = Role {
        metadata: meta(),
        rules: Some(vec![
            PolicyRule {
                resource_names: Some(vec![service.clone()]),
                ..read("payments.io", &["paymentservices"], &["get"])
            },
            read("apps", &["deployments"], &["list"]),
            read("", &["services", "serviceaccounts"], &["list"]),
            read("autoscaling", &["horizontalpodautoscalers"], &["list"]),
            read("policy", &["poddisruptionbudgets"], &["list"]),
        ]),
    };
    let role_binding = RoleBinding {
        metadata: meta(),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.to_string(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.to_string(),
            namespace: ps.namespace(),
            ..Subject::default()
        }]),
    };
    (role, role_binding)
}

/// The claim the exports are written to.
fn export_volume(service: &str, labels: &Labels) -> PersistentVolumeClaim {
    let q = |s: &str| Quantity(s.to_string());
    PersistentVolumeClaim {
        metadata: builder::meta(backup_volume_name(service), labels.clone()),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    q(BACKUP_VOLUME_SIZE),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::{service, spec};

    const IMAGE: &str = "registry.example/payment-service-operator@sha256:0123";

    fn build() -> BackupChildren {
        let ps = service(spec());
        let backup = ps.spec.backup().cloned();
        desired_backup(
            &ps,
            backup.as_ref().unwrap_or(&Backup {
                enabled: true,
                schedule: "0 2 * * *".into(),
                retention: 30,
                time_zone: None,
                git: None,
            }),
            &WorkloadDefaults::default(),
            IMAGE,
        )
    }

    /// A server before 1.25 refuses CronJob `timeZone`: it is sent only when asked for.
    #[test]
    fn a_time_zone_is_set_only_when_the_spec_names_one() {
        let ps = service(spec());
        let mut backup = Backup {
            enabled: true,
            schedule: "0 2 * * *".into(),
            retention: 30,
            time_zone: None,
            git: None,
        };
        let unzoned = desired_backup(&ps, &backup, &WorkloadDefaults::default(), IMAGE);
        let json = serde_json::to_value(&unzoned.cron_job).unwrap_or_default();
        assert!(json["spec"].get("timeZone").is_none(), "{json}");
        backup.time_zone = Some("Europe/London".into());
        let zoned = desired_backup(&ps, &backup, &WorkloadDefaults::default(), IMAGE);
        assert_eq!(
            zoned.cron_job.spec.and_then(|s| s.time_zone).as_deref(),
            Some("Europe/London")
        );
    }

    #[test]
    fn runs_on_the_schedule_one_at_a_time_with_retention_from_the_spec() {
        let b = build();
        let spec = b.cron_job.spec.unwrap_or_default();
        assert_eq!(spec.schedule, "0 2 * * *");
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
        let pod = spec
            .job_template
            .spec
            .unwrap_or_default()
            .template
            .spec
            .unwrap_or_default();
        let export = &pod.containers[0];
        assert_eq!(export.image.as_deref(), Some(IMAGE));
        assert_eq!(
            export.command, None,
            "the image's entrypoint is the operator"
        );
        let args = export.args.clone().unwrap_or_default();
        assert_eq!(args[0], "backup");
        assert!(args.contains(&"--service=payment-initiation-service".to_string()));
        assert!(args.contains(&"--retention-days=30".to_string()));
        let command_line = std::iter::once("payment-service-operator".to_string()).chain(args);
        let run = crate::backup::Export::from_args(command_line.map(Into::into).collect());
        let run = run.map(|r| (r.service, r.namespace, r.retention_days, r.to));
        assert_eq!(
            run,
            Some((
                "payment-initiation-service".into(),
                Some("payments".into()),
                30,
                "/backups".into()
            )),
            "the binary reads back what the CronJob passes"
        );
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("payment-initiation-service-backup")
        );
        let claim = pod
            .volumes
            .iter()
            .flatten()
            .find_map(|v| v.persistent_volume_claim.clone())
            .map(|c| c.claim_name);
        assert_eq!(claim.as_deref(), Some("payment-initiation-service-backups"));
    }

    /// The Git target reaches the Job as flags, and its credentials as a read-only mount of
    /// the named Secret: never in the environment, never read by the operator.
    #[test]
    fn a_git_target_mounts_its_credentials_and_names_the_branch() {
        let ps = service(spec());
        let backup = Backup {
            enabled: true,
            schedule: "0 2 * * *".into(),
            retention: 30,
            time_zone: None,
            git: Some(crate::crd::GitBackup {
                url: "https://git.example.com/backups.git".into(),
                credentials_secret: "git-backup-credentials".into(),
                branch: None,
            }),
        };
        let built = desired_backup(&ps, &backup, &WorkloadDefaults::default(), IMAGE);
        let pod = built.cron_job.spec.unwrap_or_default().job_template.spec;
        let pod = pod.unwrap_or_default().template.spec.unwrap_or_default();
        let secret = pod.volumes.iter().flatten().find_map(|v| v.secret.clone());
        assert_eq!(
            secret.and_then(|s| s.secret_name).as_deref(),
            Some("git-backup-credentials")
        );
        let export = &pod.containers[0];
        assert!(export.env.is_none(), "no credential in the environment");
        let mount = export
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "git-credentials");
        assert_eq!(mount.and_then(|m| m.read_only), Some(true));
        let args = export.args.clone().unwrap_or_default();
        let command_line = std::iter::once("payment-service-operator".to_string()).chain(args);
        let run = crate::backup::Export::from_args(command_line.map(Into::into).collect());
        let run = run.map(|r| (r.git_url, r.git_branch, r.git_credentials));
        assert_eq!(
            run,
            Some((
                Some("https://git.example.com/backups.git".into()),
                Some("backups/payments/payment-initiation-service".into()),
                "/etc/backup-git".into()
            ))
        );
    }

    #[test]
    fn backup_pods_are_not_selected_by_the_service() {
        let labels = build()
            .cron_job
            .spec
            .unwrap_or_default()
            .job_template
            .spec
            .unwrap_or_default()
            .template
            .metadata
            .unwrap_or_default()
            .labels
            .unwrap_or_default();
        assert!(!labels.contains_key("app"));
    }

    #[test]
    fn the_role_reads_only_and_names_only_this_service() {
        let rules = build().role.rules.unwrap_or_default();
        assert!(
            rules
                .iter()
                .all(|r| r.verbs.iter().all(|v| v == "get" || v == "list"))
        );
        assert!(
            rules
                .iter()
                .all(|r| r.resources.iter().flatten().all(|x| x != "*"))
        );
        assert_eq!(
            rules[0].resource_names.clone().unwrap_or_default(),
            vec!["payment-initiation-service".to_string()]
        );
        assert!(
            rules
                .iter()
                .all(|r| r.resources.iter().flatten().all(|x| x != "secrets")),
            "backups never export Secrets"
        );
    }
}
