//! The backup Job's work, run by the operator's own binary and image as
//! `payment-service-operator backup --service NAME --retention-days N`: it exports the
//! PaymentService as its owner wrote it (`paymentservice.yaml`) and the children the operator
//! rendered from it (`children.yaml`) to `<to>/<UTC timestamp>/`, then removes the exports
//! older than the retention. The Job's Role lets it read only that service and lists of its
//! children's kinds; Secrets are never exported.
//!
//! An export is written to `<timestamp>.partial/` and renamed when complete, so a run that
//! fails halfway leaves nothing that looks like a backup (the next run removes it). Only
//! directories named as exports are ever removed: anything else on the claim is left alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::{SignedDuration, Timestamp, civil::DateTime, tz::TimeZone};
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use operator_core::credentials::Hidden;
use operator_core::manifests::{as_written, to_documents};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crd::PaymentService;

pub mod git;

/// How an export directory is named: its UTC start time, which sorts as it reads.
const STAMP: &str = "%Y%m%dT%H%M%SZ";
/// The suffix of an export still being written.
const PARTIAL: &str = ".partial";

/// One run of the backup Job.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "payment-service-operator backup",
    about = "Export one PaymentService and its children to a directory, keeping N days of exports"
)]
pub struct Export {
    /// The PaymentService to export.
    #[arg(long)]
    pub service: String,
    /// Its namespace; by default the one the Job runs in.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// The directory the exports go to (the backup claim's mount).
    #[arg(long, default_value = "/backups")]
    pub to: PathBuf,
    /// Days an export is kept.
    #[arg(long)]
    pub retention_days: u32,
    /// A Git repository (smart HTTP) to commit the kept exports to after each run.
    #[arg(long)]
    pub git_url: Option<String>,
    /// The branch of that repository.
    #[arg(long, requires = "git_url")]
    pub git_branch: Option<String>,
    /// A directory with the files `username` and `password` (the credentials Secret's
    /// mount).
    #[arg(long, default_value = "/etc/backup-git")]
    pub git_credentials: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "could not read {what}: {source}; check that the backup Role still grants it and the service exists"
    )]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("could not write {}: {source}; check the backup claim is mounted and has space", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not encode the export as YAML: {0}")]
    Encode(#[from] serde_yaml::Error),
    #[error(
        "the Git credentials have no {key}: the credentials Secret needs the keys username and password"
    )]
    Credentials { key: &'static str },
    #[error("the exports are kept on the claim, but not committed: {0}")]
    Git(#[from] git::GitError),
}

/// What one run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    /// The export's directory.
    pub dir: PathBuf,
    /// How many children it holds.
    pub children: usize,
    /// The exports (and unfinished ones) removed by retention.
    pub removed: Vec<String>,
    /// The commit that holds the kept exports, when a Git repository was named.
    pub commit: Option<String>,
}

impl Export {
    /// `Some` when the binary was started as `<binary> backup …`: the Job's command line.
    pub fn from_args(args: Vec<std::ffi::OsString>) -> Option<Self> {
        use clap::Parser;
        (args.get(1)? == "backup").then(|| Self::parse_from(args.into_iter().skip(1)))
    }

    /// Runs the export with `client`'s default namespace unless one was named.
    pub async fn run(&self, client: Client) -> Result<Exported, BackupError> {
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        let now = Timestamp::now();
        let exported = export(&client, &namespace, &self.service, &self.to, now).await?;
        let removed = remove_expired(&self.to, now, self.retention_days)?;
        let commit = match &self.git_url {
            Some(url) => {
                let remote = git::Remote {
                    url: url.clone(),
                    branch: self
                        .git_branch
                        .clone()
                        .unwrap_or_else(|| default_branch(&namespace, &self.service)),
                    username: credential(&self.git_credentials, "username")?,
                    password: Hidden::new(credential(&self.git_credentials, "password")?),
                };
                let files = kept_exports(&self.to)?;
                let message = format!(
                    "Backup of PaymentService {namespace}/{} at {}\n\n{} exports kept ({} days).",
                    self.service,
                    now.strftime(STAMP),
                    files.len() / 2,
                    self.retention_days
                );
                Some(git::push(&remote, &files, &message, now).await?)
            }
            None => None,
        };
        Ok(Exported {
            removed,
            commit,
            ..exported
        })
    }
}

/// An I/O error at `path`, for `map_err`.
fn at(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + use<> {
    let path = path.to_path_buf();
    move |source| BackupError::Write { path, source }
}

/// The branch a service's exports go to unless `backup.git.branch` names one: one branch a
/// service, since each commit holds only that service's exports.
pub fn default_branch(namespace: &str, service: &str) -> String {
    format!("backups/{namespace}/{service}")
}

/// One key of the mounted credentials Secret, without a trailing newline.
fn credential(dir: &Path, key: &'static str) -> Result<String, BackupError> {
    let value =
        std::fs::read_to_string(dir.join(key)).map_err(|_| BackupError::Credentials { key })?;
    Ok(value.trim_end_matches(['\r', '\n']).to_string())
}

/// Every file of the finished exports under `to`, by `<export>/<file>`.
fn kept_exports(to: &Path) -> Result<BTreeMap<String, Vec<u8>>, BackupError> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(to).map_err(at(to))? {
        let entry = entry.map_err(at(to))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if started_at(&name).is_none() {
            continue;
        }
        for file in std::fs::read_dir(entry.path()).map_err(at(&entry.path()))? {
            let file = file.map_err(at(&entry.path()))?;
            let content = std::fs::read(file.path()).map_err(at(&file.path()))?;
            let path = format!("{name}/{}", file.file_name().to_string_lossy());
            files.insert(path, content);
        }
    }
    Ok(files)
}

/// Writes the export of `service` under `to`, named for `now`.
pub async fn export(
    client: &Client,
    namespace: &str,
    service: &str,
    to: &Path,
    now: Timestamp,
) -> Result<Exported, BackupError> {
    let read = |what: String| move |source| BackupError::Read { what, source };
    let resource = Api::<PaymentService>::namespaced(client.clone(), namespace)
        .get(service)
        .await
        .map_err(read(format!("PaymentService {namespace}/{service}")))?;
    let selector = format!(
        "app.kubernetes.io/instance={service},{}",
        crate::IDENTITY.managed_selector()
    );
    let mut children = Vec::new();
    children.extend(list::<Deployment>(client, namespace, &selector).await?);
    children.extend(list::<Service>(client, namespace, &selector).await?);
    children.extend(list::<HorizontalPodAutoscaler>(client, namespace, &selector).await?);
    children.extend(list::<PodDisruptionBudget>(client, namespace, &selector).await?);
    children.extend(list::<ServiceAccount>(client, namespace, &selector).await?);

    let name = now.strftime(STAMP).to_string();
    let partial = to.join(format!("{name}{PARTIAL}"));
    let write = |path: PathBuf, text: String| std::fs::write(&path, text).map_err(at(&path));
    std::fs::create_dir_all(&partial).map_err(at(&partial))?;
    write(
        partial.join("paymentservice.yaml"),
        to_documents([&object(&resource)])?,
    )?;
    write(partial.join("children.yaml"), to_documents(&children)?)?;
    let dir = to.join(&name);
    // A second run in the same second (a Job started by hand) replaces the first's export.
    if dir.is_dir() {
        std::fs::remove_dir_all(&dir).map_err(at(&dir))?;
    }
    std::fs::rename(&partial, &dir).map_err(at(&dir))?;
    Ok(Exported {
        dir,
        children: children.len(),
        removed: Vec::new(),
        commit: None,
    })
}

/// `resource` as its owner wrote it, with its kind (a typed get leaves `kind` to the type).
fn object<K: Resource<DynamicType = ()> + Serialize>(resource: &K) -> Value {
    let mut value = serde_json::to_value(resource).unwrap_or_default();
    value["apiVersion"] = K::api_version(&()).into();
    value["kind"] = K::kind(&()).into();
    as_written(value)
}

async fn list<K>(
    client: &Client,
    namespace: &str,
    selector: &str,
) -> Result<Vec<Value>, BackupError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    K: Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let items = Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|source| BackupError::Read {
            what: format!("the {}s of the service", K::kind(&())),
            source,
        })?;
    Ok(items.items.iter().map(object).collect())
}

/// Removes, under `to`, the exports older than `retention_days` and any unfinished one.
fn remove_expired(
    to: &Path,
    now: Timestamp,
    retention_days: u32,
) -> Result<Vec<String>, BackupError> {
    let names: Vec<String> = std::fs::read_dir(to)
        .map_err(at(to))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    let expired = expired(&names, now, retention_days);
    for name in &expired {
        let path = to.join(name);
        std::fs::remove_dir_all(&path).map_err(at(&path))?;
    }
    Ok(expired)
}

/// Which of `names` go: exports older than `retention_days` before `now`, and unfinished
/// exports. A name that is not an export's is never among them.
pub fn expired(names: &[String], now: Timestamp, retention_days: u32) -> Vec<String> {
    let oldest_kept = now - SignedDuration::from_hours(24 * i64::from(retention_days));
    let mut expired: Vec<String> = names
        .iter()
        .filter(|name| match name.strip_suffix(PARTIAL) {
            Some(started) => started_at(started).is_some(),
            None => started_at(name).is_some_and(|t| t < oldest_kept),
        })
        .cloned()
        .collect();
    expired.sort();
    expired
}

/// When the export named `name` started, if `name` is an export's.
fn started_at(name: &str) -> Option<Timestamp> {
    let time = DateTime::strptime(STAMP, name).ok()?;
    Some(time.to_zoned(TimeZone::UTC).ok()?.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exports_past_retention_and_unfinished_ones_go_and_nothing_else() {
        let now: Timestamp = "2026-12-07T02:00:00Z".parse().unwrap_or_default();
        let on_claim = names(&[
            "20261106T015959Z",         // 31 days old: goes
            "20261107T020000Z",         // exactly 30 days: kept
            "20261206T020000Z",         // yesterday: kept
            "20261206T020000Z.partial", // a run that failed: goes
            "lost+found",               // the filesystem's: kept
            "notes.txt",
            "2026-11-01",
        ]);
        assert_eq!(
            expired(&on_claim, now, 30),
            names(&["20261106T015959Z", "20261206T020000Z.partial"])
        );
        assert_eq!(expired(&on_claim, now, 0).len(), 4);
    }

    #[test]
    fn an_export_is_named_by_its_utc_start_and_read_back() {
        let now: Timestamp = "2026-12-07T02:03:04.5Z".parse().unwrap_or_default();
        let name = now.strftime(STAMP).to_string();
        assert_eq!(name, "20261207T020304Z");
        assert_eq!(
            started_at(&name),
            "2026-12-07T02:03:04Z".parse::<Timestamp>().ok()
        );
    }

    #[test]
    fn the_job_command_line_is_recognised() {
        let args = |a: &[&str]| {
            a.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert!(Export::from_args(args(&["payment-service-operator", "--leader-elect"])).is_none());
        let export = Export::from_args(args(&[
            "payment-service-operator",
            "backup",
            "--service",
            "ledger",
            "--retention-days",
            "7",
        ]));
        let export = export.map(|e| (e.service, e.retention_days, e.to));
        assert_eq!(
            export,
            Some(("ledger".into(), 7, PathBuf::from("/backups")))
        );
    }
}
