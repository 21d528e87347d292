//! Kubernetes events (`events.k8s.io/v1`) for what a human wants to see in
//! `kubectl describe`, published under the operator's reporter name.
//!
//! A repeat of an event within six minutes (the same object, type, reason, action and note)
//! is folded into the first one's `series`, as client-go and kube's recorder do. The publisher
//! remembers a few dozen bytes per series, and forgets them with their object; kube's recorder
//! keeps two copies of every event for six minutes (about 6 KiB per resource at N = 1,000).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Resource;
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::apply::Changes;
use crate::conditions::Reason;

/// How long a repeat is folded into the series of the event it repeats.
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// The two event types `kubectl describe` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// An event already published, as much as its repeats need.
#[derive(Debug)]
struct Published {
    /// Digest of what makes a repeat: type, reason, action, note.
    what: u64,
    name: String,
    count: i32,
    last: Timestamp,
}

/// The series of the last six minutes, by the UID of the object they are about.
#[derive(Debug, Default)]
struct Series {
    by_object: HashMap<String, Vec<Published>>,
    pruned: Option<Timestamp>,
}

impl Series {
    /// Drops series older than the window, at most once a window: a prune walks them all.
    fn prune(&mut self, now: Timestamp) {
        if self.pruned.is_some_and(|at| at + SERIES_WINDOW > now) {
            return;
        }
        self.by_object.retain(|_, series| {
            series.retain(|p| p.last + SERIES_WINDOW > now);
            !series.is_empty()
        });
        self.pruned = Some(now);
    }

    fn repeat_of(&self, uid: &str, what: u64, now: Timestamp) -> Option<(String, i32)> {
        self.by_object
            .get(uid)?
            .iter()
            .find(|p| p.what == what && p.last + SERIES_WINDOW > now)
            .map(|p| (p.name.clone(), p.count + 1))
    }

    fn record(&mut self, uid: &str, what: u64, name: String, count: i32, now: Timestamp) {
        let series = self.by_object.entry(uid.to_string()).or_default();
        series.retain(|p| p.what != what);
        series.push(Published {
            what,
            name,
            count,
            last: now,
        });
    }
}

/// Publishes events about the objects an operator manages. An event that cannot be published
/// is logged and dropped: events inform, they never fail a reconcile.
#[derive(Clone)]
pub struct EventPublisher {
    client: kube::Client,
    controller: String,
    /// This replica (its pod name), or the controller's name when unknown.
    instance: String,
    series: Arc<Mutex<Series>>,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("controller", &self.controller)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl EventPublisher {
    /// `controller` is the reporting controller (e.g. `trading-operator`); `instance` the pod
    /// name of this replica, when known.
    pub fn new(client: kube::Client, controller: &str, instance: Option<String>) -> Self {
        Self {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
            series: Arc::default(),
        }
    }

    /// Forgets the series of an object that is gone.
    pub fn forget(&self, uid: &str) {
        self.series().by_object.remove(uid);
    }

    /// Keeps only the series of objects whose UID is in `live`.
    pub fn retain(&self, live: &std::collections::HashSet<String>) {
        self.series().by_object.retain(|uid, _| live.contains(uid));
    }

    /// How many objects have a series remembered (for memory accounting).
    pub fn remembered(&self) -> usize {
        self.series().by_object.len()
    }

    fn series(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A Normal event: something happened as intended (`Created`, `Scaled`, `CleanupDone`).
    pub async fn normal<K>(&self, obj: &K, reason: Reason, action: &str, note: impl Into<String>)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish(obj, EventType::Normal, reason, action, note.into())
            .await;
    }

    /// A Warning event: something a human should look at (`InvalidSpec`, `RolledBack`).
    pub async fn warning<K>(&self, obj: &K, reason: Reason, action: &str, note: impl Into<String>)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish(obj, EventType::Warning, reason, action, note.into())
            .await;
    }

    /// A record that must not be lost (a final report before deletion). An event cannot hold
    /// it: a namespace being deleted refuses new events, and a finalizer that insisted would
    /// hang the deletion. So it is always logged as a structured line (`record` = reason) and
    /// published as a Normal event only as well as it can be; the caller keeps it in the
    /// object's status too, which a terminating namespace still accepts.
    pub async fn record<K>(&self, obj: &K, reason: Reason, action: &str, note: impl Into<String>)
    where
        K: Resource<DynamicType = ()>,
    {
        let note = note.into();
        let meta = obj.meta();
        tracing::info!(
            record = reason.as_str(),
            kind = %K::kind(&()),
            namespace = meta.namespace.as_deref().unwrap_or_default(),
            name = meta.name.as_deref().unwrap_or_default(),
            uid = meta.uid.as_deref().unwrap_or_default(),
            note = %note,
            "final record"
        );
        self.publish(obj, EventType::Normal, reason, action, note)
            .await;
    }

    /// Normal events for the children a pass created, updated and deleted.
    pub async fn changes<K>(&self, obj: &K, changes: &Changes)
    where
        K: Resource<DynamicType = ()>,
    {
        for (reason, names) in [
            (crate::reason!("Created"), &changes.created),
            (crate::reason!("Updated"), &changes.updated),
            (crate::reason!("Deleted"), &changes.pruned),
        ] {
            if !names.is_empty() {
                let note = format!("{} {}", reason.as_str().to_lowercase(), names.join(", "));
                self.normal(obj, reason, "Apply", note).await;
            }
        }
    }

    async fn try_publish<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: Reason,
        action: &str,
        note: String,
    ) -> Result<(), kube::Error>
    where
        K: Resource<DynamicType = ()>,
    {
        let regarding = obj.object_ref(&());
        let uid = regarding.uid.clone().unwrap_or_default();
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let what = {
            let mut hasher = DefaultHasher::new();
            (type_, reason.as_str(), action, &note).hash(&mut hasher);
            hasher.finish()
        };
        let now = Timestamp::now();
        let repeat = {
            let mut series = self.series();
            series.prune(now);
            series.repeat_of(&uid, what, now)
        };
        if let Some((name, count)) = repeat {
            let patch = serde_json::json!({
                "series": {"count": count, "lastObservedTime": MicroTime(now)}
            });
            match events
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.series().record(&uid, what, name, count, now);
                    return Ok(());
                }
                // Gone from the server (events expire): the repeat starts a new one.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(&self.controller),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.to_string()),
                ..ObjectMeta::default()
            },
            action: Some(action.to_string()),
            reason: Some(reason.as_str().to_string()),
            note: Some(note),
            type_: Some(type_.as_str().to_string()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        events.create(&PostParams::default(), &event).await?;
        self.series().record(&uid, what, name, 1, now);
        Ok(())
    }

    /// Logs the action at INFO (so the log tells every change the operator made, events or
    /// not), then publishes it as well as it can.
    async fn publish<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: Reason,
        action: &str,
        note: String,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let warning = type_ == EventType::Warning;
        tracing::info!(
            reason = reason.as_str(),
            warning,
            kind = %K::kind(&()),
            name = obj.meta().name.as_deref().unwrap_or_default(),
            note = %note,
            "{action}"
        );
        if let Err(error) = self.try_publish(obj, type_, reason, action, note).await {
            let error = crate::error::describe_kube(&error);
            tracing::warn!(%error, reason = reason.as_str(), "could not publish event");
        }
    }
}
