//! The partner metrics the alerts read. Per adapter and partner (labelled by namespace, name
//! and partner, by design: per-resource gauges, at most 32 partners each, removed with the
//! adapter or the partner): `clearing_adapter_partner_healthy` (1, 0, or absent before a
//! check), `clearing_adapter_partner_drained` and `clearing_adapter_partner_effective_weight`;
//! per adapter `clearing_adapter_partners_all_down`; across adapters
//! `clearing_adapter_partner_checks_total{result}` and
//! `clearing_adapter_partner_transitions_total{transition}` (drained, restored,
//! drained_by_hand, restored_by_hand). `drained` is the checks' drain: a partner drained by
//! hand shows in its effective weight, not there, so a planned drain raises no alert.

use operator_core::metrics::{Metrics, ResourceGauge};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::crd::ClearingAdapter;
use crate::partners::{PartnerPlan, Transition};
use operator_core::dashboard::PanelKind::{Stat, Table, TimeSeries};
use operator_core::dashboard::{Row, panel, per_resource, per_resource_by, q};

/// Seed 001's payment panels (from deploy/monitoring's recording rules over what an adapter
/// image exports, docs/clearing-adapter.md), then each adapter's partners.
pub const DASHBOARD: &[Row] = &[
    Row {
        title: "Payments",
        panels: &[
            panel(
                "Payment processing rate",
                TimeSeries,
                "ops",
                &[q(
                    r#"payment:processing_rate{namespace=~"$namespace"}"#,
                    "{{namespace}}/{{service}}",
                )],
            ),
            panel(
                "Success rate",
                Stat,
                "percentunit",
                &[q(
                    r#"payment:success_rate{namespace=~"$namespace"}"#,
                    "{{namespace}}/{{service}}",
                )],
            ),
            panel(
                "Latency percentiles",
                TimeSeries,
                "s",
                &[
                    q(
                        r#"payment:latency_p99{namespace=~"$namespace"}"#,
                        "{{service}} p99",
                    ),
                    q(
                        r#"payment:latency_p95{namespace=~"$namespace"}"#,
                        "{{service}} p95",
                    ),
                    q(
                        r#"payment:latency_p50{namespace=~"$namespace"}"#,
                        "{{service}} p50",
                    ),
                ],
            ),
            panel(
                "Failed payments",
                TimeSeries,
                "ops",
                &[q(
                    r#"sum by (namespace, service) (rate(payment_processor_transactions_total{status!="success", namespace=~"$namespace"}[$__rate_interval]))"#,
                    "{{namespace}}/{{service}}",
                )],
            ),
        ],
    },
    Row {
        title: "Partners",
        panels: &[
            panel(
                "Partner health",
                Table,
                "short",
                &[per_resource_by(
                    "clearing_adapter_partner_healthy",
                    "partner",
                    "",
                )],
            ),
            panel(
                "Effective weights",
                TimeSeries,
                "short",
                &[per_resource(
                    "clearing_adapter_partner_effective_weight",
                    "{{partner}}",
                )],
            ),
            panel(
                "Health checks",
                TimeSeries,
                "ops",
                &[q(
                    r#"sum by (result) (rate(clearing_adapter_partner_checks_total{job=~"$job"}[$__rate_interval]))"#,
                    "{{result}}",
                )],
            ),
            panel(
                "Drained partners",
                TimeSeries,
                "short",
                &[
                    per_resource("clearing_adapter_partner_drained", "{{partner}} drained"),
                    per_resource("clearing_adapter_partners_all_down", "all down"),
                ],
            ),
        ],
    },
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    transition: &'static str,
}

#[derive(Clone, Debug)]
pub struct AdapterMetrics {
    healthy: ResourceGauge<ClearingAdapter>,
    drained: ResourceGauge<ClearingAdapter>,
    weight: ResourceGauge<ClearingAdapter>,
    all_down: ResourceGauge<ClearingAdapter>,
    checks: Family<CheckLabels, Counter>,
    transitions: Family<TransitionLabels, Counter>,
}

impl AdapterMetrics {
    /// Creates the metrics in the runtime's registry; an adapter's series go with it.
    pub fn register(metrics: &Metrics) -> Self {
        let (checks, transitions) = (Family::default(), Family::default());
        metrics.register(
            "clearing_adapter_partner_checks",
            "Partner health checks, by result (healthy, failed)",
            checks.clone(),
        );
        metrics.register(
            "clearing_adapter_partner_transitions",
            "Partners drained and restored, by transition",
            transitions.clone(),
        );
        let per_partner = |name, help| metrics.resource_gauge_by(name, help, "partner");
        Self {
            healthy: per_partner(
                "clearing_adapter_partner_healthy",
                "1 when the partner's last health check passed, 0 when it failed",
            ),
            drained: per_partner(
                "clearing_adapter_partner_drained",
                "1 while the partner is drained (out of the routing table after failed checks)",
            ),
            weight: per_partner(
                "clearing_adapter_partner_effective_weight",
                "The partner's weight in the routing table now (0 while drained)",
            ),
            all_down: metrics.resource_gauge(
                "clearing_adapter_partners_all_down",
                "1 when every partner carrying traffic fails its checks (weights kept)",
            ),
            checks,
            transitions,
        }
    }

    /// Counts this pass's checks and transitions and sets the adapter's gauges.
    pub fn observe(&self, ca: &ClearingAdapter, plan: &PartnerPlan, checked: usize, failed: usize) {
        let healthy = (checked - failed) as u64;
        for (result, n) in [("healthy", healthy), ("failed", failed as u64)] {
            self.checks.get_or_create(&CheckLabels { result }).inc_by(n);
        }
        for t in &plan.transitions {
            let transition = match t {
                Transition::Drained { .. } => "drained",
                Transition::Restored { .. } => "restored",
                Transition::DrainedByHand { .. } => "drained_by_hand",
                Transition::RestoredByHand { .. } => "restored_by_hand",
            };
            self.transitions
                .get_or_create(&TransitionLabels { transition })
                .inc();
        }
        for status in &plan.statuses {
            let partner = status.name.as_str();
            match status.healthy {
                Some(healthy) => {
                    self.healthy
                        .of_labelled(ca, partner)
                        .set(i64::from(healthy));
                }
                None => self.healthy.remove_labelled(ca, partner),
            }
            self.drained
                .of_labelled(ca, partner)
                .set(i64::from(status.drained));
            let weight = i64::from(status.effective_weight);
            self.weight.of_labelled(ca, partner).set(weight);
        }
        let partners = || plan.statuses.iter().map(|s| s.name.as_str());
        for gauge in [&self.healthy, &self.drained, &self.weight] {
            gauge.retain_labelled(ca, partners());
        }
        // Hand drains in the mix: a person's doing, not the partners failing.
        let failing = plan.all_down && !plan.statuses.iter().any(|s| s.drained_by_hand);
        self.all_down.of(ca).set(i64::from(failing));
    }
}
