//! The PrometheusRule `<name>-alerts`, when `monitoring.alertOnFailure` asks for it: one alert
//! on a failed run, one on a run overdue by more than one schedule period (the batch did not
//! run at all — the failure nobody notices). `alertEmail` rides on the alerts as label
//! `alert_email` for Alertmanager's routes.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use operator_core::builder::WorkloadDefaults;
use operator_core::monitoring::{AlertRule, PrometheusRule, PrometheusRuleSpec, RuleGroup};

use super::child_labels;
use crate::crd::{BatchProcessor, Monitoring};

pub fn alerts_name(batch: &str) -> String {
    format!("{batch}-alerts")
}

/// The longest gap between two runs of `schedule` in `time_zone` (UTC when not set), over
/// its runs from a fixed day (so the builder stays pure) until sixty runs or a year have
/// passed: enough for any weekly, monthly or yearly pattern, and cheap enough for every
/// reconcile. `None` for a schedule that does not parse (validation refuses it first).
pub fn schedule_period(schedule: &str, time_zone: Option<&str>) -> Option<Duration> {
    const YEAR: Duration = Duration::from_secs(366 * 86_400);
    let cron: croner::Cron = schedule.trim().parse().ok()?;
    let zone = time_zone
        .and_then(|z| TimeZone::get(z).ok())
        .unwrap_or(TimeZone::UTC);
    let start = Timestamp::from_second(1_767_225_600).ok()?.to_zoned(zone); // 2026-01-01
    let mut previous: Option<Timestamp> = None;
    let mut longest: Option<Duration> = None;
    let mut span = Duration::ZERO;
    for fire in cron.iter_after(start).take(60).map(|z| z.timestamp()) {
        if let Some(before) = previous {
            let gap = Duration::try_from(before.duration_until(fire)).ok()?;
            longest = longest.max(Some(gap));
            span += gap;
            if span > YEAR {
                break;
            }
        }
        previous = Some(fire);
    }
    longest
}

pub fn desired_alerts(
    bp: &BatchProcessor,
    monitoring: &Monitoring,
    defaults: &WorkloadDefaults,
) -> PrometheusRule {
    let name = bp.name_any();
    let namespace = bp.namespace().unwrap_or_default();
    let selector = format!("namespace=\"{namespace}\",name=\"{name}\"");
    let mut labels = BTreeMap::from([("severity".to_string(), "critical".to_string())]);
    if let Some(email) = &monitoring.alert_email {
        labels.insert("alert_email".into(), email.clone());
    }
    let period = schedule_period(&bp.spec.schedule, bp.spec.time_zone.as_deref())
        .unwrap_or(Duration::from_secs(86_400));
    let overdue_after = period.as_secs().saturating_mul(2);
    let annotations = |summary: String, runbook: &str| {
        BTreeMap::from([
            ("summary".to_string(), summary),
            ("runbook_url".to_string(), defaults.runbook(runbook)),
        ])
    };
    let rules = vec![
        AlertRule {
            alert: "BatchRunFailed".into(),
            expr: format!("batch_processor_last_run_failed{{{selector}}} == 1"),
            for_: None,
            labels: labels.clone(),
            annotations: annotations(
                format!(
                    "The last run of batch {namespace}/{name} failed after its last attempt: see its status.lastRun.message"
                ),
                "batch-run-failed",
            ),
        },
        AlertRule {
            alert: "BatchRunOverdue".into(),
            expr: format!(
                "time() - batch_processor_last_schedule_timestamp_seconds{{{selector}}} > {overdue_after}"
            ),
            for_: Some("5m".into()),
            labels,
            annotations: annotations(
                format!(
                    "Batch {namespace}/{name} has not started a run for more than two schedule periods ({}s)",
                    overdue_after
                ),
                "batch-run-overdue",
            ),
        },
    ];
    PrometheusRule {
        metadata: ObjectMeta {
            name: Some(alerts_name(&name)),
            labels: Some(child_labels(bp, defaults)),
            ..ObjectMeta::default()
        },
        spec: PrometheusRuleSpec {
            groups: vec![RuleGroup {
                name: format!("batch-processor.{namespace}.{name}"),
                rules,
            }],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::tests_support::seed;

    #[test]
    fn the_period_is_the_longest_gap_between_runs() {
        assert_eq!(
            schedule_period("0 2 * * *", None),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(
            schedule_period("*/15 * * * *", None),
            Some(Duration::from_secs(900))
        );
        assert_eq!(
            schedule_period("0 2 * * MON-FRI", None),
            Some(Duration::from_secs(3 * 86_400))
        );
        assert_eq!(
            schedule_period("@hourly", Some("Europe/London")),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(schedule_period("61 2 * * *", None), None);
    }

    #[test]
    fn the_seeds_batch_alerts_on_failure_and_on_a_missed_run_routed_to_its_email() {
        let mut bp = seed();
        bp.metadata.namespace = Some("payments".into());
        let monitoring = bp
            .spec
            .alerting()
            .cloned()
            .expect("the seed asks for alerts");
        let rule = desired_alerts(&bp, &monitoring, &WorkloadDefaults::default());
        assert_eq!(
            rule.metadata.name.as_deref(),
            Some("daily-payment-batch-alerts")
        );
        let rules = &rule.spec.groups[0].rules;
        assert_eq!(
            rules[0].expr,
            "batch_processor_last_run_failed{namespace=\"payments\",name=\"daily-payment-batch\"} == 1"
        );
        assert!(rules[1].expr.ends_with("} > 172800"), "{}", rules[1].expr);
        for r in rules {
            assert_eq!(r.labels["alert_email"], "ops@payments.io");
            assert!(r.annotations["runbook_url"].starts_with(&format!(
                "{}#batch-run-",
                operator_core::monitoring::RUNBOOK_BASE
            )));
        }
        // The operator's config moves the links, as deploy/monitoring's component moves its own.
        let own = WorkloadDefaults {
            runbook_base: Some("https://wiki.example.internal/runbooks".into()),
            ..WorkloadDefaults::default()
        };
        let rule = desired_alerts(&bp, &monitoring, &own);
        assert_eq!(
            rule.spec.groups[0].rules[0].annotations["runbook_url"],
            "https://wiki.example.internal/runbooks#batch-run-failed"
        );
    }
}
