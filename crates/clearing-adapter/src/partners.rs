//! The partner routing decision, pure: the last status of each partner and this pass's
//! health checks in, each partner's new status and effective weight out, with what changed.
//!
//! A partner failing `circuitBreaker.failureThreshold` checks in a row is *drained*: its
//! effective weight becomes 0, so the adapter sends its traffic to the others. After
//! `successThreshold` good checks in a row it is restored to its configured weight. When every
//! partner that carries traffic is drained at once, no weight is taken away (draining all
//! would stop every payment): the table keeps the configured weights and the condition says so.
//!
//! A person can drain a partner too ([`DRAIN_ANNOTATION`]): it gets weight 0 whatever its
//! checks say, until it is taken off the annotation. Drained by hand counts as drained in the
//! rule above, so no hand drain takes the last partner carrying traffic out either.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use kube::ResourceExt;

use crate::crd::{BankingPartnerStatus, ClearingAdapter, ClearingAdapterSpec};
use crate::health::Verdict;

/// The partners a person drained: their names, comma-separated (`acme-bank,globex-clearing`).
pub const DRAIN_ANNOTATION: &str = "payments.io/drain-partners";

/// The partners [`DRAIN_ANNOTATION`] names on `ca`.
pub fn drained_by_hand(ca: &ClearingAdapter) -> BTreeSet<String> {
    ca.annotations()
        .get(DRAIN_ANNOTATION)
        .map(|value| names(value))
        .unwrap_or_default()
}

/// The partner names of a [`DRAIN_ANNOTATION`] value.
pub fn names(value: &str) -> BTreeSet<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect()
}

/// What a pass decided about the partners.
#[derive(Clone, Debug, PartialEq)]
pub struct PartnerPlan {
    /// One per partner of the spec, in its order.
    pub statuses: Vec<BankingPartnerStatus>,
    /// Partners newly drained or restored this pass.
    pub transitions: Vec<Transition>,
    /// Every partner carrying traffic is drained; the configured weights are kept.
    pub all_down: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    Drained {
        partner: String,
        failures: i32,
        message: String,
    },
    Restored {
        partner: String,
        successes: i32,
    },
    /// Named by [`DRAIN_ANNOTATION`] since this pass.
    DrainedByHand {
        partner: String,
    },
    /// Taken off [`DRAIN_ANNOTATION`] this pass; `still_drained` by its failing checks.
    RestoredByHand {
        partner: String,
        still_drained: bool,
    },
}

impl PartnerPlan {
    /// The routing table's weights: partner name → effective weight.
    pub fn weights(&self) -> BTreeMap<String, i32> {
        self.statuses
            .iter()
            .map(|s| (s.name.clone(), s.effective_weight))
            .collect()
    }

    /// Partners whose last check passed, of all (`2/3`); `None` before any check.
    pub fn healthy_count(&self) -> Option<(usize, usize)> {
        let checked = self.statuses.iter().any(|s| s.last_checked.is_some());
        checked.then(|| {
            let healthy = self
                .statuses
                .iter()
                .filter(|s| s.healthy == Some(true))
                .count();
            (healthy, self.statuses.len())
        })
    }
}

/// The next state of every partner. `checks` holds this pass's verdicts by partner name, or
/// is `None` when no check ran (not due yet, or checks switched off): the previous state then
/// stands, for the partners the spec still names. `by_hand` are the partners a person drained.
pub fn plan(
    spec: &ClearingAdapterSpec,
    previous: &[BankingPartnerStatus],
    by_hand: &BTreeSet<String>,
    checks: Option<&BTreeMap<String, Verdict>>,
    now: Timestamp,
) -> PartnerPlan {
    let breaker = &spec.circuit_breaker;
    let mut transitions = Vec::new();
    let mut statuses: Vec<BankingPartnerStatus> = spec
        .config
        .banking_partners
        .iter()
        .map(|partner| {
            let before = previous.iter().find(|s| s.name == partner.name);
            let mut status = before.cloned().unwrap_or_else(|| BankingPartnerStatus {
                name: partner.name.clone(),
                healthy: None,
                drained: false,
                drained_by_hand: false,
                effective_weight: partner.weight,
                last_checked: None,
                consecutive_failures: 0,
                consecutive_successes: 0,
                message: "not checked yet".into(),
            });
            let held = by_hand.contains(&partner.name);
            match (status.drained_by_hand, held) {
                (false, true) => transitions.push(Transition::DrainedByHand {
                    partner: partner.name.clone(),
                }),
                (true, false) => transitions.push(Transition::RestoredByHand {
                    partner: partner.name.clone(),
                    still_drained: status.drained,
                }),
                _ => {}
            }
            status.drained_by_hand = held;
            if let Some(verdict) = checks.and_then(|c| c.get(&partner.name)) {
                status.healthy = Some(verdict.healthy);
                status.last_checked = Some(Time(now));
                status.message = verdict.message.clone();
                if verdict.healthy {
                    status.consecutive_failures = 0;
                    status.consecutive_successes = status.consecutive_successes.saturating_add(1);
                    if status.drained && status.consecutive_successes >= breaker.success_threshold {
                        status.drained = false;
                        transitions.push(Transition::Restored {
                            partner: partner.name.clone(),
                            successes: status.consecutive_successes,
                        });
                    }
                } else {
                    status.consecutive_successes = 0;
                    status.consecutive_failures = status.consecutive_failures.saturating_add(1);
                    if !status.drained && status.consecutive_failures >= breaker.failure_threshold {
                        status.drained = true;
                        transitions.push(Transition::Drained {
                            partner: partner.name.clone(),
                            failures: status.consecutive_failures,
                            message: verdict.message.clone(),
                        });
                    }
                }
            }
            status
        })
        .collect();

    let weights: Vec<i32> = spec
        .config
        .banking_partners
        .iter()
        .map(|p| p.weight)
        .collect();
    let carrying = statuses.iter().zip(&weights).filter(|(_, w)| **w > 0);
    let out = |s: &BankingPartnerStatus| s.drained || s.drained_by_hand;
    let all_down = carrying.clone().count() > 0 && carrying.clone().all(|(s, _)| out(s));
    for (status, weight) in statuses.iter_mut().zip(&weights) {
        status.effective_weight = if out(status) && !all_down { 0 } else { *weight };
    }
    PartnerPlan {
        statuses,
        transitions,
        all_down,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::tests_support::sample;

    fn verdicts(acme: bool, globex: bool) -> BTreeMap<String, Verdict> {
        let v = |ok| {
            if ok {
                Verdict::healthy("HTTP 200")
            } else {
                Verdict::failed("HTTP 503")
            }
        };
        BTreeMap::from([
            ("acme-bank".to_string(), v(acme)),
            ("globex-clearing".to_string(), v(globex)),
        ])
    }

    /// `rounds` passes with the same verdicts, from `start`.
    fn run(
        start: Vec<BankingPartnerStatus>,
        rounds: usize,
        acme: bool,
        globex: bool,
    ) -> (PartnerPlan, Vec<Transition>) {
        let spec = sample().spec;
        let mut statuses = start;
        let mut all = Vec::new();
        let mut last = None;
        for _ in 0..rounds {
            let p = plan(
                &spec,
                &statuses,
                &BTreeSet::new(),
                Some(&verdicts(acme, globex)),
                Timestamp::UNIX_EPOCH,
            );
            statuses = p.statuses.clone();
            all.extend(p.transitions.clone());
            last = Some(p);
        }
        (
            last.unwrap_or_else(|| {
                plan(
                    &spec,
                    &statuses,
                    &BTreeSet::new(),
                    None,
                    Timestamp::UNIX_EPOCH,
                )
            }),
            all,
        )
    }

    #[test]
    fn before_any_check_every_partner_has_its_configured_weight() {
        let p = plan(
            &sample().spec,
            &[],
            &BTreeSet::new(),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            p.weights(),
            BTreeMap::from([("acme-bank".into(), 70), ("globex-clearing".into(), 30)])
        );
        assert_eq!(p.healthy_count(), None);
        assert!(p.statuses.iter().all(|s| s.healthy.is_none()));
    }

    #[test]
    fn a_partner_is_drained_at_the_failure_threshold_not_before() {
        let (p, transitions) = run(Vec::new(), 4, true, false);
        assert_eq!(p.weights()["globex-clearing"], 30, "four failures of five");
        assert!(transitions.is_empty());
        let (p, transitions) = run(p.statuses, 1, true, false);
        assert_eq!(p.weights()["globex-clearing"], 0);
        assert_eq!(p.weights()["acme-bank"], 70);
        assert!(
            matches!(&transitions[..], [Transition::Drained { partner, failures: 5, .. }] if partner == "globex-clearing")
        );
        assert_eq!(p.healthy_count(), Some((1, 2)));
        assert!(!p.all_down);
    }

    #[test]
    fn a_drained_partner_is_restored_after_the_success_threshold() {
        let (drained, _) = run(Vec::new(), 5, true, false);
        let (p, transitions) = run(drained.statuses.clone(), 2, true, true);
        assert_eq!(
            p.weights()["globex-clearing"],
            0,
            "two good checks of three"
        );
        assert!(transitions.is_empty());
        let (p, transitions) = run(p.statuses, 1, true, true);
        assert_eq!(p.weights()["globex-clearing"], 30);
        assert_eq!(
            transitions,
            [Transition::Restored {
                partner: "globex-clearing".into(),
                successes: 3
            }]
        );
        // A failure in between starts the count again.
        let (p, _) = run(drained.statuses, 2, true, true);
        let (p, _) = run(p.statuses, 1, true, false);
        let (p, _) = run(p.statuses, 2, true, true);
        assert_eq!(p.weights()["globex-clearing"], 0);
    }

    #[test]
    fn when_every_partner_is_down_the_weights_are_kept() {
        let (p, transitions) = run(Vec::new(), 5, false, false);
        assert!(p.all_down);
        assert_eq!(
            p.weights(),
            BTreeMap::from([("acme-bank".into(), 70), ("globex-clearing".into(), 30)])
        );
        assert!(p.statuses.iter().all(|s| s.drained));
        assert_eq!(transitions.len(), 2);
        // One comes back: the other is drained, traffic goes to the one that answers.
        let (p, _) = run(p.statuses, 3, true, false);
        assert!(!p.all_down);
        assert_eq!(p.weights()["acme-bank"], 70);
        assert_eq!(p.weights()["globex-clearing"], 0);
    }

    #[test]
    fn no_check_keeps_the_state_and_a_removed_partner_is_forgotten() {
        let (drained, _) = run(Vec::new(), 5, true, false);
        let mut spec = sample().spec;
        let p = plan(
            &spec,
            &drained.statuses,
            &BTreeSet::new(),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(p.statuses, drained.statuses);
        spec.config.banking_partners.remove(1);
        let p = plan(
            &spec,
            &drained.statuses,
            &BTreeSet::new(),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(p.statuses.len(), 1);
        assert_eq!(p.weights(), BTreeMap::from([("acme-bank".into(), 70)]));
    }

    #[test]
    fn a_standby_partner_never_counts_towards_all_down() {
        let mut spec = sample().spec;
        spec.config.banking_partners[1].weight = 0;
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let p = plan(
                &spec,
                &statuses,
                &BTreeSet::new(),
                Some(&verdicts(false, true)),
                Timestamp::UNIX_EPOCH,
            );
            statuses = p.statuses;
        }
        let p = plan(
            &spec,
            &statuses,
            &BTreeSet::new(),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert!(p.all_down, "the only partner carrying traffic is down");
        assert_eq!(p.weights()["acme-bank"], 70);
    }

    fn held(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn restored_by_hand(partner: &str, still_drained: bool) -> Vec<Transition> {
        vec![Transition::RestoredByHand {
            partner: partner.into(),
            still_drained,
        }]
    }

    #[test]
    fn a_partner_drained_by_hand_carries_nothing_until_it_is_taken_off() {
        let spec = sample().spec;
        let (healthy, _) = run(Vec::new(), 1, true, true);
        let at = Timestamp::UNIX_EPOCH;
        let p = plan(&spec, &healthy.statuses, &held(&["acme-bank"]), None, at);
        assert_eq!(
            p.weights(),
            BTreeMap::from([("acme-bank".into(), 0), ("globex-clearing".into(), 30)])
        );
        assert_eq!(
            p.transitions,
            vec![Transition::DrainedByHand {
                partner: "acme-bank".into()
            }]
        );
        assert!(p.statuses[0].drained_by_hand && !p.statuses[0].drained);
        // Healthy checks do not bring it back while it is named.
        let p = plan(
            &spec,
            &p.statuses,
            &held(&["acme-bank"]),
            Some(&verdicts(true, true)),
            at,
        );
        assert_eq!(p.weights()["acme-bank"], 0);
        assert!(p.transitions.is_empty(), "said once: {:?}", p.transitions);
        let p = plan(&spec, &p.statuses, &BTreeSet::new(), None, at);
        assert_eq!(p.weights()["acme-bank"], 70);
        assert_eq!(p.transitions, restored_by_hand("acme-bank", false));
    }

    #[test]
    fn taken_off_by_hand_a_failing_partner_stays_drained_by_its_checks() {
        let spec = sample().spec;
        let (failing, _) = run(Vec::new(), 5, true, false);
        let at = Timestamp::UNIX_EPOCH;
        let p = plan(
            &spec,
            &failing.statuses,
            &held(&["globex-clearing"]),
            None,
            at,
        );
        let p = plan(&spec, &p.statuses, &BTreeSet::new(), None, at);
        assert_eq!(p.weights()["globex-clearing"], 0);
        assert_eq!(p.transitions, restored_by_hand("globex-clearing", true));
    }

    #[test]
    fn no_hand_drain_takes_the_last_partner_carrying_traffic_out() {
        let spec = sample().spec;
        let at = Timestamp::UNIX_EPOCH;
        let both = held(&["acme-bank", "globex-clearing"]);
        let p = plan(&spec, &[], &both, None, at);
        assert!(p.all_down);
        assert_eq!(
            p.weights(),
            BTreeMap::from([("acme-bank".into(), 70), ("globex-clearing".into(), 30)])
        );
        // One drained by hand, the other by its checks: still every one out.
        let (failing, _) = run(Vec::new(), 5, true, false);
        let p = plan(&spec, &failing.statuses, &held(&["acme-bank"]), None, at);
        assert!(p.all_down);
        assert_eq!(p.weights()["acme-bank"], 70);
    }

    #[test]
    fn the_annotation_names_partners_separated_by_commas() {
        assert_eq!(
            names(" acme-bank, ,globex-clearing,"),
            held(&["acme-bank", "globex-clearing"])
        );
        assert!(names("").is_empty());
    }
}
