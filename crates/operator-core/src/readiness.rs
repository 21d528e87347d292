//! What `/readyz` reports, shared by the runtime (connected, leading), the controllers (caches
//! synced) and the webhook server (its certificate).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::WriterDropped;

/// How often [`cache_filled`] looks again.
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// Waits until `cache` holds its first full list. kube's readiness signal keeps the waker of
/// its last poller only, and a controller's own runner waits on its store too, so a second
/// waiter may never be woken (an operator that started with objects never reported ready):
/// this one looks again every 100 ms instead of trusting the wake-up.
pub async fn cache_filled<K>(cache: &Store<K>) -> Result<(), WriterDropped>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        if let Ok(filled) = tokio::time::timeout(LOOK_AGAIN, cache.wait_until_ready()).await {
            return filled;
        }
    }
}

/// What `/readyz` reports. Cheap to clone; clones share state.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    inner: Arc<ReadinessState>,
}

#[derive(Debug, Default)]
struct ReadinessState {
    connected: AtomicBool,
    leading: AtomicBool,
    controllers: AtomicUsize,
    synced: AtomicUsize,
    /// What keeps a service of this replica from working (the webhook's certificate), said
    /// on `/readyz` so `kubectl describe pod` shows it.
    problem: std::sync::Mutex<Option<String>>,
}

impl Readiness {
    pub fn set_connected(&self) {
        self.inner.connected.store(true, Ordering::SeqCst);
    }

    pub fn set_leading(&self, leading: bool) {
        self.inner.leading.store(leading, Ordering::SeqCst);
    }

    /// A controller that will report its caches synced once.
    pub fn register_controller(&self) {
        self.inner.controllers.fetch_add(1, Ordering::SeqCst);
    }

    pub fn controller_synced(&self) {
        self.inner.synced.fetch_add(1, Ordering::SeqCst);
    }

    /// Reports what keeps a service from working (`Some`), or that it works again (`None`).
    pub fn set_problem(&self, problem: Option<String>) {
        *self
            .inner
            .problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = problem;
    }

    /// Ready when connected, no service reports a problem, and either standing by or leading
    /// with every cache synced.
    pub fn is_ready(&self) -> bool {
        self.not_ready_because().is_none()
    }

    /// Why this replica is not ready, if it is not.
    pub fn not_ready_because(&self) -> Option<String> {
        let s = &self.inner;
        if let Some(problem) = s
            .problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            return Some(problem);
        }
        if !s.connected.load(Ordering::SeqCst) {
            return Some("the API server has not answered yet".to_string());
        }
        (s.leading.load(Ordering::SeqCst)
            && s.synced.load(Ordering::SeqCst) < s.controllers.load(Ordering::SeqCst))
        .then(|| "leading, and the controllers' caches are not synced yet".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_is_ready_a_leader_waits_for_its_caches() {
        let r = Readiness::default();
        assert!(!r.is_ready(), "not before the API server answered");
        r.set_connected();
        r.register_controller();
        assert!(r.is_ready(), "a standby is ready");
        r.set_leading(true);
        assert!(!r.is_ready(), "a leader waits for its caches");
        r.controller_synced();
        assert!(r.is_ready());
        r.set_problem(Some("webhook certificate: no tls.crt".into()));
        assert_eq!(
            r.not_ready_because().as_deref(),
            Some("webhook certificate: no tls.crt"),
            "a service's problem is said on /readyz"
        );
        r.set_problem(None);
        assert!(r.is_ready());
    }
}
