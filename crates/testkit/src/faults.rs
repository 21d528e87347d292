//! Fault injection and request accounting: what reliability tests and benchmarks use to make
//! the server misbehave on purpose and to count what a client cost it.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::ApiError;

/// What a request asked the server to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Apply,
    Delete,
    DeleteCollection,
}

impl Verb {
    /// Whether the verb can change stored state.
    pub fn is_write(self) -> bool {
        !matches!(self, Self::Get | Self::List | Self::Watch)
    }
}

/// The failure a fault rule injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `500 InternalError`.
    ServerError,
    /// `429 TooManyRequests` with `Retry-After`.
    TooManyRequests { retry_after_secs: u64 },
    /// `409 Conflict`, as when another writer got there first.
    Conflict,
}

/// Injects `fault` into a share (`rate`, 0..=1) of the requests that match.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    /// Verbs the rule applies to; empty means every verb.
    pub verbs: Vec<Verb>,
    /// Resource plurals (`deployments`, `tradingalgorithms`) the rule applies to; empty means all.
    pub resources: Vec<String>,
    pub rate: f64,
    pub fault: Fault,
}

/// A fault plan; the same seed gives the same faults for the same request sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    pub seed: u64,
    pub rules: Vec<FaultRule>,
    /// Added to every request before it is served.
    pub latency: Duration,
    /// Chance that an open watch is cut after each event it delivers.
    pub watch_drop_rate: f64,
}

impl Faults {
    /// The mix the operators' fault suites run under: 10% server errors on any request, 5%
    /// conflicts on writes, 2% 429s with `Retry-After: 1`, 1 ms added to every request, and
    /// 1% of watch events followed by a cut watch.
    pub fn chaos(seed: u64) -> Self {
        Self {
            seed,
            rules: vec![
                FaultRule {
                    verbs: vec![],
                    resources: vec![],
                    rate: 0.10,
                    fault: Fault::ServerError,
                },
                FaultRule {
                    verbs: vec![
                        Verb::Apply,
                        Verb::Patch,
                        Verb::Update,
                        Verb::Create,
                        Verb::Delete,
                    ],
                    resources: vec![],
                    rate: 0.05,
                    fault: Fault::Conflict,
                },
                FaultRule {
                    verbs: vec![],
                    resources: vec![],
                    rate: 0.02,
                    fault: Fault::TooManyRequests {
                        retry_after_secs: 1,
                    },
                },
            ],
            latency: Duration::from_millis(1),
            watch_drop_rate: 0.01,
        }
    }
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            seed: 0,
            rules: Vec::new(),
            latency: Duration::ZERO,
            watch_drop_rate: 0.0,
        }
    }
}

#[derive(Debug)]
pub(crate) struct FaultState {
    pub plan: Faults,
    rng: StdRng,
}

impl FaultState {
    pub fn new(plan: Faults) -> Self {
        let rng = StdRng::seed_from_u64(plan.seed);
        Self { plan, rng }
    }

    /// The failure to serve instead of this request, if a rule fires.
    pub fn draw(&mut self, verb: Verb, resource: &str, name: &str) -> Option<ApiError> {
        for rule in &self.plan.rules {
            let applies = (rule.verbs.is_empty() || rule.verbs.contains(&verb))
                && (rule.resources.is_empty() || rule.resources.iter().any(|r| r == resource));
            if applies && self.rng.random_bool(rule.rate.clamp(0.0, 1.0)) {
                return Some(match rule.fault {
                    Fault::ServerError => ApiError::internal("injected fault: internal error"),
                    Fault::TooManyRequests { retry_after_secs } => {
                        ApiError::too_many_requests(retry_after_secs)
                    }
                    Fault::Conflict => ApiError::conflict(
                        resource,
                        name,
                        "the object has been modified; please apply your changes to the latest version and try again",
                    ),
                });
            }
        }
        None
    }

    pub fn drop_watch(&mut self) -> bool {
        self.plan.watch_drop_rate > 0.0
            && self
                .rng
                .random_bool(self.plan.watch_drop_rate.clamp(0.0, 1.0))
    }
}

/// Requests of one verb on one resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    /// Writes that changed stored state (a no-op apply does not count).
    pub changed: u64,
    /// Requests answered with an injected fault.
    pub faulted: u64,
}

/// Every request the server saw, by verb and resource plural.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestStats {
    pub by: BTreeMap<(Verb, String), Counts>,
}

impl RequestStats {
    pub(crate) fn record(&mut self, verb: Verb, resource: &str, changed: bool, faulted: bool) {
        let c = self.by.entry((verb, resource.to_string())).or_default();
        c.requests += 1;
        c.changed += u64::from(changed);
        c.faulted += u64::from(faulted);
    }

    fn sum(&self, pick: impl Fn(Verb, &str) -> bool) -> u64 {
        self.by
            .iter()
            .filter(|((v, r), _)| pick(*v, r))
            .map(|(_, c)| c.requests)
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.sum(|_, _| true)
    }

    pub fn reads(&self) -> u64 {
        self.sum(|v, _| !v.is_write())
    }

    pub fn writes(&self) -> u64 {
        self.sum(|v, _| v.is_write())
    }

    /// Writes to one resource (plural), of any verb.
    pub fn writes_to(&self, resource: &str) -> u64 {
        self.sum(|v, r| v.is_write() && r == resource)
    }

    /// Writes that changed something.
    pub fn changing_writes(&self) -> u64 {
        self.by.values().map(|c| c.changed).sum()
    }

    pub fn count(&self, verb: Verb, resource: &str) -> u64 {
        self.by
            .get(&(verb, resource.to_string()))
            .map_or(0, |c| c.requests)
    }
}
