//! The partner metrics the alerts read. Per adapter and partner (labelled by namespace, name
//! and partner, by design: per-resource gauges, at most 32 partners each, removed with the
//! adapter or the partner): `clearing_adapter_partner_healthy` (1, 0, or absent before a
//! check), `clearing_adapter_partner_drained` and `clearing_adapter_partner_effective_weight`;
//! per adapter `clearing_adapter_partners_all_down`; across adapters
//! `clearing_adapter_partner_checks_total{result}` and
//! `clearing_adapter_partner_transitions_total{transition}` (drained, restored).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use kube::ResourceExt;
use operator_core::metrics::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::crd::ClearingAdapter;
use crate::partners::{PartnerPlan, Transition};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdapterLabels {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartnerLabels {
    namespace: String,
    name: String,
    partner: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    transition: &'static str,
}

/// `(namespace, name)` of an adapter → the partners it has series for.
type KnownPartners = BTreeMap<(String, String), BTreeSet<String>>;

#[derive(Clone, Debug, Default)]
pub struct AdapterMetrics {
    healthy: Family<PartnerLabels, Gauge>,
    drained: Family<PartnerLabels, Gauge>,
    weight: Family<PartnerLabels, Gauge>,
    all_down: Family<AdapterLabels, Gauge>,
    checks: Family<ResultLabels, Counter>,
    transitions: Family<TransitionLabels, Counter>,
    /// The partners each adapter has series for, so a removed one's series go too.
    partners: Arc<Mutex<KnownPartners>>,
}

impl AdapterMetrics {
    /// Creates the metrics in the runtime's registry; an adapter's series go with it.
    pub fn register(metrics: &Metrics) -> Self {
        let m = Self::default();
        metrics.register(
            "clearing_adapter_partner_healthy",
            "1 when the partner's last health check passed, 0 when it failed",
            m.healthy.clone(),
        );
        metrics.register(
            "clearing_adapter_partner_drained",
            "1 while the partner is drained (out of the routing table after failed checks)",
            m.drained.clone(),
        );
        metrics.register(
            "clearing_adapter_partner_effective_weight",
            "The partner's weight in the routing table now (0 while drained)",
            m.weight.clone(),
        );
        metrics.register(
            "clearing_adapter_partners_all_down",
            "1 when every partner carrying traffic fails its checks (weights kept)",
            m.all_down.clone(),
        );
        metrics.register(
            "clearing_adapter_partner_checks",
            "Partner health checks, by result (healthy, failed)",
            m.checks.clone(),
        );
        metrics.register(
            "clearing_adapter_partner_transitions",
            "Partners drained and restored, by transition",
            m.transitions.clone(),
        );
        let gone = m.clone();
        metrics.on_resource_gone(crate::CONTROLLER, move |ns, name| gone.forget(ns, name));
        m
    }

    fn known(&self) -> std::sync::MutexGuard<'_, KnownPartners> {
        self.partners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts this pass's checks and transitions and sets the adapter's gauges.
    pub fn observe(&self, ca: &ClearingAdapter, plan: &PartnerPlan, checked: usize, failed: usize) {
        self.checks
            .get_or_create(&ResultLabels { result: "healthy" })
            .inc_by((checked - failed) as u64);
        self.checks
            .get_or_create(&ResultLabels { result: "failed" })
            .inc_by(failed as u64);
        for t in &plan.transitions {
            let transition = match t {
                Transition::Drained { .. } => "drained",
                Transition::Restored { .. } => "restored",
            };
            self.transitions
                .get_or_create(&TransitionLabels { transition })
                .inc();
        }
        let (namespace, name) = (ca.namespace().unwrap_or_default(), ca.name_any());
        let label = |partner: &str| PartnerLabels {
            namespace: namespace.clone(),
            name: name.clone(),
            partner: partner.to_string(),
        };
        let now: BTreeSet<String> = plan.statuses.iter().map(|s| s.name.clone()).collect();
        let before = self
            .known()
            .insert((namespace.clone(), name.clone()), now)
            .unwrap_or_default();
        for status in &plan.statuses {
            let l = label(&status.name);
            match status.healthy {
                Some(healthy) => {
                    self.healthy.get_or_create(&l).set(i64::from(healthy));
                }
                None => {
                    self.healthy.remove(&l);
                }
            }
            self.drained
                .get_or_create(&l)
                .set(i64::from(status.drained));
            self.weight
                .get_or_create(&l)
                .set(i64::from(status.effective_weight));
        }
        for removed in before
            .iter()
            .filter(|p| !plan.statuses.iter().any(|s| &s.name == *p))
        {
            self.remove_partner(&label(removed));
        }
        self.all_down
            .get_or_create(&AdapterLabels {
                namespace: namespace.clone(),
                name: name.clone(),
            })
            .set(i64::from(plan.all_down));
    }

    fn remove_partner(&self, labels: &PartnerLabels) {
        self.healthy.remove(labels);
        self.drained.remove(labels);
        self.weight.remove(labels);
    }

    /// Drops every series of an adapter.
    pub fn forget(&self, namespace: &str, name: &str) {
        let partners = self
            .known()
            .remove(&(namespace.to_string(), name.to_string()))
            .unwrap_or_default();
        for partner in partners {
            self.remove_partner(&PartnerLabels {
                namespace: namespace.into(),
                name: name.into(),
                partner,
            });
        }
        self.all_down.remove(&AdapterLabels {
            namespace: namespace.into(),
            name: name.into(),
        });
    }
}
