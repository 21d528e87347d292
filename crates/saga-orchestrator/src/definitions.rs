//! Saga definitions as the orchestrator reads them, versioned, and which versions it holds —
//! pure: the spec's sagas, the versions already held (from the `<name>-sagas` ConfigMap the
//! operator wrote last) and the instances in flight on each (from `<name>-inflight`, which the
//! orchestrator writes) in; the versions to hold out.
//!
//! A changed definition is a new version beside the old ones, never a replacement: instances
//! started on an old version finish on it. A saga keeps its current version and up to
//! `definitionHistoryLimit` older ones; an older version beyond the limit is dropped once no
//! instance runs on it, and **a version with instances in flight is never dropped**, whatever
//! the limit, even when its saga has left the spec.

use std::collections::BTreeMap;

use operator_core::apply::short_digest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::crd::SagaDefinition;

/// The port every PaymentService serves on (its Service, named after it).
pub const SERVICE_PORT: i32 = 8080;

/// One saga version as the orchestrator reads it (`<saga>.<version>.json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub saga: String,
    pub version: String,
    /// The JSON document.
    pub document: String,
}

impl Version {
    /// The ConfigMap key of the document.
    pub fn key(&self) -> String {
        format!("{}.{}.json", self.saga, self.version)
    }

    /// `saga/version`, as status and events name it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.saga, self.version)
    }
}

/// The document of one saga: each step's service resolved to its in-cluster URL.
pub fn render(namespace: &str, saga: &SagaDefinition) -> Version {
    let steps: Vec<Value> = saga
        .steps
        .iter()
        .map(|step| {
            json!({
                "name": step.name,
                "service": step.service,
                "url": format!("http://{}.{namespace}.svc:{SERVICE_PORT}", step.service),
                "action": step.action,
                "compensation": step.compensation,
                "timeout": step.timeout,
                "retry": step.retry,
            })
        })
        .collect();
    let body = json!({
        "saga": saga.name,
        "timeout": saga.timeout,
        "pivot": saga.pivot,
        "steps": steps,
    });
    // The version is the content's hash: the same definition is the same version.
    let canonical = serde_json::to_string(&body).unwrap_or_default();
    let version = short_digest([canonical.as_bytes()]);
    let mut document = body;
    document["version"] = json!(version);
    Version {
        saga: saga.name.clone(),
        version,
        document: serde_json::to_string_pretty(&document).unwrap_or_default(),
    }
}

/// `index.json` of the sagas ConfigMap: per saga, the version new instances start on
/// (`current`, absent once the saga left the spec) and every version held, newest first;
/// `draining` tells the orchestrator to start no new instance (the resource is being deleted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub draining: bool,
    #[serde(default)]
    pub sagas: BTreeMap<String, SagaIndex>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SagaIndex {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub versions: Vec<String>,
}

/// What the orchestrator holds now, read back from the ConfigMap data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    pub index: Index,
    pub versions: BTreeMap<(String, String), Version>,
}

impl Held {
    /// Reads the ConfigMap data (empty before the first write; a version whose document is
    /// missing is not held).
    pub fn from_data(data: &BTreeMap<String, String>) -> Self {
        let index: Index = data
            .get("index.json")
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or_default();
        let mut versions = BTreeMap::new();
        for (saga, entry) in &index.sagas {
            for version in &entry.versions {
                let v = Version {
                    saga: saga.clone(),
                    version: version.clone(),
                    document: String::new(),
                };
                if let Some(document) = data.get(&v.key()) {
                    versions.insert(
                        (saga.clone(), version.clone()),
                        Version {
                            document: document.clone(),
                            ..v
                        },
                    );
                }
            }
        }
        Self { index, versions }
    }

    /// The current version of every saga held: the last valid definitions.
    pub fn current(&self) -> Vec<Version> {
        self.index
            .sagas
            .iter()
            .filter_map(|(saga, entry)| {
                let current = entry.current.as_ref()?;
                self.versions.get(&(saga.clone(), current.clone())).cloned()
            })
            .collect()
    }
}

/// Instances in flight by `(saga, version)`, as the orchestrator reports them.
pub type InFlight = BTreeMap<(String, String), i64>;

/// Reads `<name>-inflight`: keys `<saga>.<version>`, values the count. Keys or values it
/// cannot read are ignored (reported by the caller as unreadable).
pub fn read_in_flight(data: &BTreeMap<String, String>) -> (InFlight, Vec<String>) {
    let mut counts = InFlight::new();
    let mut unreadable = Vec::new();
    for (key, value) in data {
        match (key.rsplit_once('.'), value.trim().parse::<i64>()) {
            (Some((saga, version)), Ok(n)) if n >= 0 => {
                counts.insert((saga.to_string(), version.to_string()), n);
            }
            _ => unreadable.push(key.clone()),
        }
    }
    (counts, unreadable)
}

/// The versions to hold after this pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefinitionPlan {
    pub index: Index,
    /// Every version held, each saga's newest first.
    pub versions: Vec<Version>,
    /// Versions dropped this pass (`saga/version`).
    pub dropped: Vec<String>,
    /// Versions added this pass (`saga/version`).
    pub added: Vec<String>,
}

impl DefinitionPlan {
    /// Saga → current version.
    pub fn active(&self) -> BTreeMap<String, String> {
        self.index
            .sagas
            .iter()
            .filter_map(|(saga, e)| Some((saga.clone(), e.current.clone()?)))
            .collect()
    }

    /// The pods' view of the definitions: what a new version changes (older versions being
    /// dropped do not roll the pods).
    pub fn active_digest(&self) -> String {
        let active = serde_json::to_string(&self.active()).unwrap_or_default();
        short_digest([active.as_bytes()])
    }

    /// Older versions instances still run on (`saga/version`).
    pub fn draining(&self, in_flight: &InFlight) -> Vec<String> {
        self.versions
            .iter()
            .filter(|v| {
                self.index
                    .sagas
                    .get(&v.saga)
                    .and_then(|e| e.current.as_ref())
                    != Some(&v.version)
                    && in_flight
                        .get(&(v.saga.clone(), v.version.clone()))
                        .is_some_and(|n| *n > 0)
            })
            .map(Version::label)
            .collect()
    }
}

/// Decides the versions to hold. `current` is the spec's rendered sagas when they are
/// valid, or `None` to keep the last valid ones (`held.current()`).
pub fn plan(
    current: Option<Vec<Version>>,
    held: &Held,
    in_flight: &InFlight,
    history_limit: usize,
    draining: bool,
) -> DefinitionPlan {
    let current = current.unwrap_or_else(|| held.current());
    let mut index = Index {
        draining,
        sagas: BTreeMap::new(),
    };
    let mut versions = Vec::new();
    let mut added = Vec::new();
    let mut dropped = Vec::new();
    let running = |saga: &str, version: &str| {
        in_flight
            .get(&(saga.to_string(), version.to_string()))
            .is_some_and(|n| *n > 0)
    };
    let mut sagas: Vec<&str> = current.iter().map(|v| v.saga.as_str()).collect();
    sagas.extend(held.index.sagas.keys().map(String::as_str));
    sagas.sort_unstable();
    sagas.dedup();
    for saga in sagas {
        let now = current.iter().find(|v| v.saga == saga);
        let mut entry = SagaIndex {
            current: now.map(|v| v.version.clone()),
            versions: Vec::new(),
        };
        if let Some(v) = now {
            let was_held = held
                .versions
                .contains_key(&(v.saga.clone(), v.version.clone()));
            if !was_held {
                added.push(v.label());
            }
            entry.versions.push(v.version.clone());
            versions.push(v.clone());
        }
        let older = held
            .index
            .sagas
            .get(saga)
            .map(|e| e.versions.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|version| Some(version) != entry.current.as_ref())
            .filter_map(|version| held.versions.get(&(saga.to_string(), version)).cloned());
        // A saga that left the spec keeps no history, only what still runs.
        let limit = if now.is_some() { history_limit } else { 0 };
        for (rank, v) in older.enumerate() {
            if rank < limit || running(&v.saga, &v.version) {
                entry.versions.push(v.version.clone());
                versions.push(v);
            } else {
                dropped.push(v.label());
            }
        }
        if !entry.versions.is_empty() {
            index.sagas.insert(saga.to_string(), entry);
        }
    }
    DefinitionPlan {
        index,
        versions,
        dropped,
        added,
    }
}

#[cfg(test)]
mod tests;
