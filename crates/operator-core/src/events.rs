//! Kubernetes events (`events.k8s.io/v1`) for what a human wants to see in
//! `kubectl describe`, published under the operator's reporter name.

use kube::Resource;

use crate::apply::{Changes, short_digest};
use crate::conditions::Reason;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Publishes events about the objects an operator manages. An event that cannot be published
/// is logged and dropped: events inform, they never fail a reconcile.
#[derive(Clone)]
pub struct EventPublisher {
    recorder: Recorder,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher").finish_non_exhaustive()
    }
}

impl EventPublisher {
    /// `controller` is the reporting controller (e.g. `trading-operator`); `instance` the pod
    /// name of this replica, when known.
    pub fn new(client: kube::Client, controller: &str, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: controller.to_string(),
            instance,
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
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
        // kube's recorder folds events with the same reason and action into one series and
        // keeps the first note: "rolled back 1.6.0" would be shown again for 1.7.0. A digest
        // of the note in the action keeps different events apart and still folds repeats.
        let event = Event {
            type_,
            reason: reason.as_str().to_string(),
            action: format!("{action}/{}", short_digest([note.as_bytes()])),
            note: Some(note),
            secondary: None,
        };
        self.recorder.publish(&event, &obj.object_ref(&())).await
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
        let warning = matches!(type_, EventType::Warning);
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
