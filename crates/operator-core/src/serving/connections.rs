//! How many connections one listener holds, and which one goes when it is full.
//!
//! A fixed limit that refuses new connections lets anyone who can reach the port lock it
//! out with a few dozen idle sockets: the API server's admission calls and the kubelet's
//! probes are then refused. So a full listener sheds its **oldest idle** connection (one
//! still in its TLS handshake, waiting for request headers, or between requests) to admit the
//! new one. Only when every connection is busy answering a request is a new one refused; a
//! request is bounded by the header timeout and the connection lifetime, so that passes.
//! Each listener (health, metrics, webhooks) has a budget of its own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// The open connections of one listener.
#[derive(Debug)]
pub(crate) struct ConnectionBudget {
    max: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    next: u64,
    /// By admission order (the id), so the first idle one found is the oldest.
    connections: BTreeMap<u64, Connection>,
}

#[derive(Debug)]
struct Connection {
    busy: bool,
    close: Option<oneshot::Sender<()>>,
}

/// One admitted connection: resolves [`Self::closed`] when the budget sheds it, and leaves
/// the budget when dropped.
#[derive(Debug)]
pub(crate) struct Admitted {
    id: u64,
    budget: Arc<ConnectionBudget>,
    shed: Option<oneshot::Receiver<()>>,
}

impl ConnectionBudget {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(Open::default()),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a new connection, shedding the oldest idle one if the budget is full; `None`
    /// when every open connection is busy.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let mut open = self.open();
        if open.connections.len() >= self.max {
            let oldest_idle = open
                .connections
                .iter()
                .find(|(_, c)| !c.busy)
                .map(|(id, _)| *id)?;
            if let Some(mut shed) = open.connections.remove(&oldest_idle)
                && let Some(close) = shed.close.take()
            {
                let _ = close.send(());
            }
        }
        let id = open.next;
        open.next += 1;
        let (close, shed) = oneshot::channel();
        open.connections.insert(
            id,
            Connection {
                busy: false,
                close: Some(close),
            },
        );
        Some(Admitted {
            id,
            budget: self.clone(),
            shed: Some(shed),
        })
    }

    fn set_busy(&self, id: u64, busy: bool) {
        if let Some(c) = self.open().connections.get_mut(&id) {
            c.busy = busy;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open().connections.len()
    }
}

impl Admitted {
    /// Resolves when the budget sheds this connection to admit a newer one.
    pub(crate) fn shed(&mut self) -> oneshot::Receiver<()> {
        self.shed.take().unwrap_or_else(|| oneshot::channel().1)
    }

    /// A handle that marks this connection busy while a request is answered (it is not shed
    /// meanwhile), for the request handler.
    pub(crate) fn activity(&self) -> Activity {
        Activity {
            id: self.id,
            budget: self.budget.clone(),
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.budget.open().connections.remove(&self.id);
    }
}

/// Marks one connection busy per request; see [`Admitted::activity`].
#[derive(Clone, Debug)]
pub(crate) struct Activity {
    id: u64,
    budget: Arc<ConnectionBudget>,
}

impl Activity {
    pub(crate) fn busy(&self) -> Busy {
        self.budget.set_busy(self.id, true);
        Busy {
            id: self.id,
            budget: self.budget.clone(),
        }
    }
}

/// While held, its connection is answering a request.
#[derive(Debug)]
pub(crate) struct Busy {
    id: u64,
    budget: Arc<ConnectionBudget>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.budget.set_busy(self.id, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_budget_sheds_its_oldest_idle_connection() {
        let budget = ConnectionBudget::new(3);
        let mut first = budget.admit().expect("room");
        let second = budget.admit().expect("room");
        let _third = budget.admit().expect("room");
        let mut first_shed = first.shed();
        let _answering = second.activity().busy();
        let _fourth = budget.admit().expect("the oldest idle one makes room");
        assert_eq!(first_shed.try_recv(), Ok(()), "the oldest idle one is shed");
        assert_eq!(budget.len(), 3);
        drop(first);
        assert_eq!(budget.len(), 3, "a shed connection is already gone");
    }

    #[test]
    fn busy_connections_are_never_shed_and_a_full_busy_budget_refuses() {
        let budget = ConnectionBudget::new(2);
        let a = budget.admit().expect("room");
        let b = budget.admit().expect("room");
        let (_a_busy, _b_busy) = (a.activity().busy(), b.activity().busy());
        assert!(budget.admit().is_none(), "every connection is answering");
        drop(_b_busy);
        assert!(budget.admit().is_some(), "an idle one again");
    }
}
