//! The status a pass reports, from what it applied and observed: phase, replicas and the
//! scale selector, the partners' state, the payments' figures, and the Ready, Available,
//! BankingPartnersHealthy and PaymentsSucceeding conditions, each saying what is true and what
//! to do about it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use operator_core::conditions::Reason;
use operator_core::conditions::{ConditionStatus, Observed, set_condition};

use super::business::{self, PAYMENTS_SUCCEEDING, Reading};
use super::observe::Workload;
use crate::crd::{BankingPartnerStatus, ClearingAdapter, ClearingAdapterStatus, Phase};
use crate::partners::{DRAIN_ANNOTATION, PartnerPlan};
use crate::resources::selector_string;
use operator_core::OptionalChild;

pub const PARTNERS_HEALTHY: &str = "BankingPartnersHealthy";

/// What the pass knows about its checks and scraping.
#[derive(Clone, Debug)]
pub struct Checks {
    /// The operator checks partners (its config can switch that off).
    pub enabled: bool,
    pub monitor: OptionalChild,
    /// What it read of the adapter's payments.
    pub payments: Reading,
}

/// Why every partner carrying traffic is out, when it is (the weights are then kept): all
/// fail their checks (`AllPartnersDown`), or some are drained by hand (`AllPartnersDrained`).
pub(super) fn all_out(plan: &PartnerPlan) -> (Reason, String) {
    let names = |keep: fn(&BankingPartnerStatus) -> bool| {
        let names: Vec<&str> = plan
            .statuses
            .iter()
            .filter(|s| keep(s))
            .map(|s| s.name.as_str())
            .collect();
        names.join(", ")
    };
    let by_hand = names(|s| s.drained_by_hand);
    if by_hand.is_empty() {
        return (
            operator_core::reason!("AllPartnersDown"),
            format!(
                "every partner carrying traffic fails its health checks ({}); the configured weights are kept, as draining all would stop every payment: check the partners and the adapter's egress",
                names(|_| true)
            ),
        );
    }
    let by_checks = names(|s| s.drained && !s.drained_by_hand);
    let checks = if by_checks.is_empty() {
        String::new()
    } else {
        format!("; by their failing health checks: {by_checks}")
    };
    (
        operator_core::reason!("AllPartnersDrained"),
        format!(
            "every partner carrying traffic is drained (by hand, {DRAIN_ANNOTATION}: {by_hand}{checks}); the configured weights are kept, as draining all would stop every payment: take a partner off {DRAIN_ANNOTATION}"
        ),
    )
}

/// What the checks say of the partners, and which a person drained (unless every partner is
/// out, which says so itself).
fn partners_condition(plan: &PartnerPlan, enabled: bool) -> Observed<'static> {
    let mut observed = checks_condition(plan, enabled);
    let by_hand: Vec<&str> = plan
        .statuses
        .iter()
        .filter(|s| s.drained_by_hand)
        .map(|s| s.name.as_str())
        .collect();
    if !by_hand.is_empty() && !plan.all_down {
        observed.message = format!(
            "{}. Drained by hand ({DRAIN_ANNOTATION}), weight 0 until taken off it: {}",
            observed.message,
            by_hand.join(", ")
        );
    }
    observed
}

fn checks_condition(plan: &PartnerPlan, enabled: bool) -> Observed<'static> {
    let condition = |status, reason, message: String| Observed {
        type_: PARTNERS_HEALTHY,
        status,
        reason,
        message,
    };
    if !enabled {
        return condition(
            ConditionStatus::Unknown,
            operator_core::reason!("ChecksDisabled"),
            "partner health checks are switched off in the operator's configuration (clearingAdapter.partnerHealthChecks); no partner is drained by its checks".into(),
        );
    }
    if plan.all_down {
        let (reason, message) = all_out(plan);
        return condition(ConditionStatus::False, reason, message);
    }
    let Some((healthy, total)) = plan.healthy_count() else {
        return condition(
            ConditionStatus::Unknown,
            operator_core::reason!("NotCheckedYet"),
            "the partners have not been checked yet".into(),
        );
    };
    let drained: Vec<String> = plan
        .statuses
        .iter()
        .filter(|s| s.drained)
        .map(|s| format!("{} ({})", s.name, s.message))
        .collect();
    if !drained.is_empty() {
        return condition(
            ConditionStatus::False,
            operator_core::reason!("PartnerDrained"),
            format!(
                "drained to weight 0 after failed checks: {}; {healthy} of {total} partners healthy. A drained partner returns by itself after successThreshold good checks",
                drained.join(", ")
            ),
        );
    }
    let failing: Vec<String> = plan
        .statuses
        .iter()
        .filter(|s| s.healthy == Some(false))
        .map(|s| {
            format!(
                "{} ({} failed check(s) in a row: {})",
                s.name, s.consecutive_failures, s.message
            )
        })
        .collect();
    if !failing.is_empty() {
        return condition(
            ConditionStatus::False,
            operator_core::reason!("PartnerFailing"),
            format!(
                "failing, not yet drained: {}; {healthy} of {total} partners healthy",
                failing.join(", ")
            ),
        );
    }
    condition(
        ConditionStatus::True,
        operator_core::reason!("AllPartnersHealthy"),
        format!("all {total} partners pass their health checks"),
    )
}

pub fn observed_status(
    ca: &ClearingAdapter,
    plan: &PartnerPlan,
    workload: &Workload,
    checks: Checks,
    now: Timestamp,
) -> ClearingAdapterStatus {
    let generation = ca.meta().generation;
    let mut status = ca.status.clone().unwrap_or_default();
    let wanted = if ca.spec.autoscaling.is_some() {
        ca.spec.min_replicas().max(workload.current_replicas)
    } else {
        ca.spec.replicas
    };
    status.replicas = workload.current_replicas;
    status.ready_replicas = workload.ready_replicas;
    status.selector = Some(selector_string(ca));
    status.banking_partner_status = plan.statuses.clone();
    status.partners_healthy = plan
        .healthy_count()
        .map(|(healthy, total)| format!("{healthy}/{total}"));
    status.observed_generation = generation;
    if let Reading::Read(metrics) = &checks.payments {
        status.metrics = Some(metrics.clone());
    }

    let name = ca.name_any();
    let ready = match &workload.stalled {
        Some(why) => Observed {
            type_: "Ready",
            status: ConditionStatus::False,
            reason: operator_core::reason!("RolloutStalled"),
            message: format!(
                "Deployment {name} stopped progressing: {why}; check its pods' events (image, resources, the referenced Secrets)"
            ),
        },
        None if workload.ready_replicas >= wanted => {
            let mut message = format!("{} of {wanted} adapter pods ready", workload.ready_replicas);
            if checks.monitor == OptionalChild::Unavailable {
                message.push_str(
                    "; no ServiceMonitor: the Prometheus Operator's CRD is not installed",
                );
            }
            Observed {
                type_: "Ready",
                status: ConditionStatus::True,
                reason: operator_core::reason!("PodsReady"),
                message,
            }
        }
        None => Observed {
            type_: "Ready",
            status: ConditionStatus::False,
            reason: operator_core::reason!("PodsNotReady"),
            message: format!(
                "{} of {wanted} adapter pods ready; the rollout is in progress",
                workload.ready_replicas
            ),
        },
    };
    set_condition(&mut status.conditions, ready, generation, now);
    let available = if workload.available && workload.ready_replicas > 0 {
        Observed {
            type_: "Available",
            status: ConditionStatus::True,
            reason: operator_core::reason!("MinimumPodsAvailable"),
            message: format!("{} adapter pods take payments", workload.ready_replicas),
        }
    } else {
        Observed {
            type_: "Available",
            status: ConditionStatus::False,
            reason: operator_core::reason!("NoPodAvailable"),
            message: "no adapter pod takes payments yet".into(),
        }
    };
    set_condition(&mut status.conditions, available, generation, now);
    set_condition(
        &mut status.conditions,
        partners_condition(plan, checks.enabled),
        generation,
        now,
    );
    if let Some(judged) = business::judged(ca, &checks.payments) {
        set_condition(&mut status.conditions, judged, generation, now);
    }
    let failing_payments = operator_core::conditions::find(&status.conditions, PAYMENTS_SUCCEEDING)
        .is_some_and(|c| c.status == "False");
    status.phase = Some(if workload.stalled.is_some() || failing_payments {
        Phase::Failed
    } else if workload.ready_replicas == 0 {
        Phase::Pending
    } else {
        Phase::Running
    });
    // lastUpdateTime moves only with the rest of the status: a converged adapter costs no write.
    let before = ca.status.clone().unwrap_or_default();
    status.last_update_time = before.last_update_time.clone();
    if status != before || status.last_update_time.is_none() {
        status.last_update_time = Some(Time(now));
    }
    status
}
