//! Kubernetes events (`events.k8s.io/v1`) for what a human wants to see in
//! `kubectl describe`, published under the operator's reporter name.

use kube::Resource;
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
    pub async fn normal<K>(&self, obj: &K, reason: &str, action: &str, note: impl Into<String>)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish(obj, EventType::Normal, reason, action, note.into())
            .await;
    }

    /// A Warning event: something a human should look at (`InvalidSpec`, `RolledBack`).
    pub async fn warning<K>(&self, obj: &K, reason: &str, action: &str, note: impl Into<String>)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish(obj, EventType::Warning, reason, action, note.into())
            .await;
    }

    /// A Normal event that is a record the caller cannot do without (a final report before
    /// deletion): its failure is returned, so the caller retries instead of losing it.
    pub async fn record<K>(
        &self,
        obj: &K,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) -> Result<(), kube::Error>
    where
        K: Resource<DynamicType = ()>,
    {
        self.try_publish(obj, EventType::Normal, reason, action, note.into())
            .await
    }

    async fn try_publish<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) -> Result<(), kube::Error>
    where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: None,
        };
        self.recorder.publish(&event, &obj.object_ref(&())).await
    }

    async fn publish<K>(&self, obj: &K, type_: EventType, reason: &str, action: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        if let Err(error) = self.try_publish(obj, type_, reason, action, note).await {
            tracing::warn!(%error, reason, "could not publish event");
        }
    }
}
