//! What a run's workers report: each worker pod's container ends with a termination message,
//! one JSON object `{"paymentsProcessed": N, "paymentsSucceeded": N, "paymentsFailed": N}`.
//! The run's counts are their sum; a worker whose message is missing or not that object counts
//! as a failed worker, named with the reason, and never stops the operator.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde::Deserialize;

use crate::resources::WORKER_CONTAINER;

/// The annotation an Indexed Job's pods carry their completion index in.
const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// One worker's counts, as its termination message reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerCounts {
    pub payments_processed: i64,
    pub payments_succeeded: i64,
    pub payments_failed: i64,
}

/// The sum of a run's worker reports, and the workers that did not report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    pub counts: WorkerCounts,
    /// `pod: why`, for each worker without a valid report.
    pub bad_workers: Vec<String>,
}

/// Reads one termination message.
pub fn parse(message: &str) -> Result<WorkerCounts, String> {
    let counts: WorkerCounts = serde_json::from_str(message.trim())
        .map_err(|e| format!("its termination message is not the counts object ({e})"))?;
    let WorkerCounts {
        payments_processed: processed,
        payments_succeeded: succeeded,
        payments_failed: failed,
    } = counts;
    if processed < 0 || succeeded < 0 || failed < 0 {
        return Err("its termination message has a negative count".into());
    }
    if succeeded
        .checked_add(failed)
        .is_none_or(|sum| sum > processed)
    {
        return Err(format!(
            "its termination message counts more succeeded ({succeeded}) and failed ({failed}) payments than processed ({processed})"
        ));
    }
    Ok(counts)
}

/// The worker container's termination message of a finished pod.
fn termination_message(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == WORKER_CONTAINER)?
        .state
        .as_ref()?
        .terminated
        .as_ref()?
        .message
        .clone()
        .filter(|m| !m.trim().is_empty())
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Sums the reports of one Job's pods. Per completion index only the pod that counts is read:
/// the one that succeeded, else the newest (a failed pod that the Job replaced reported
/// nothing that was kept).
pub fn summarize(pods: &[Pod]) -> RunReport {
    let mut by_index: BTreeMap<String, &Pod> = BTreeMap::new();
    for pod in pods {
        let index = pod
            .annotations()
            .get(COMPLETION_INDEX)
            .cloned()
            .unwrap_or_else(|| pod.name_any());
        let better = match by_index.get(&index) {
            None => true,
            Some(kept) => {
                let (new_ok, kept_ok) = (phase(pod) == "Succeeded", phase(kept) == "Succeeded");
                new_ok && !kept_ok
                    || new_ok == kept_ok && pod.creation_timestamp() > kept.creation_timestamp()
            }
        };
        if better {
            by_index.insert(index, pod);
        }
    }
    let mut report = RunReport::default();
    for pod in by_index.values() {
        let name = pod.name_any();
        let parsed = match termination_message(pod) {
            None => Err("it left no termination message".to_string()),
            Some(message) => parse(&message),
        };
        match parsed {
            Ok(c) => {
                let sum = &mut report.counts;
                sum.payments_processed =
                    sum.payments_processed.saturating_add(c.payments_processed);
                sum.payments_succeeded =
                    sum.payments_succeeded.saturating_add(c.payments_succeeded);
                sum.payments_failed = sum.payments_failed.saturating_add(c.payments_failed);
            }
            Err(why) => report.bad_workers.push(format!("{name}: {why}")),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use kube::api::ObjectMeta;
    use proptest::prelude::*;

    fn pod(name: &str, index: &str, phase: &str, message: Option<&str>, age: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: Some(BTreeMap::from([(COMPLETION_INDEX.into(), index.into())])),
                creation_timestamp: Some(Time(
                    Timestamp::from_second(1_700_000_000 + age).unwrap_or_default(),
                )),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: WORKER_CONTAINER.into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            message: message.map(String::from),
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    }),
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    fn counts(p: i64, s: i64, f: i64) -> String {
        format!(r#"{{"paymentsProcessed": {p}, "paymentsSucceeded": {s}, "paymentsFailed": {f}}}"#)
    }

    #[test]
    fn the_workers_reports_are_summed() {
        let report = summarize(&[
            pod(
                "run-0-a",
                "0",
                "Succeeded",
                Some(&counts(5000, 4990, 10)),
                0,
            ),
            pod(
                "run-1-a",
                "1",
                "Succeeded",
                Some(&counts(4847, 4833, 14)),
                0,
            ),
        ]);
        assert_eq!(
            report.counts,
            WorkerCounts {
                payments_processed: 9847,
                payments_succeeded: 9823,
                payments_failed: 24
            }
        );
        assert!(report.bad_workers.is_empty());
    }

    #[test]
    fn a_worker_without_a_valid_report_is_named_with_the_reason() {
        let report = summarize(&[
            pod("run-0-a", "0", "Succeeded", Some(&counts(10, 10, 0)), 0),
            pod(
                "run-1-a",
                "1",
                "Failed",
                Some("panic: sftp: connection refused"),
                0,
            ),
            pod("run-2-a", "2", "Succeeded", None, 0),
            pod("run-3-a", "3", "Succeeded", Some(&counts(1, 2, 0)), 0),
        ]);
        assert_eq!(report.counts.payments_processed, 10);
        assert_eq!(report.bad_workers.len(), 3);
        assert!(report.bad_workers[0].starts_with("run-1-a: its termination message is not"));
        assert_eq!(
            report.bad_workers[1],
            "run-2-a: it left no termination message"
        );
        assert!(
            report.bad_workers[2]
                .contains("more succeeded (2) and failed (0) payments than processed (1)")
        );
    }

    #[test]
    fn a_retried_index_counts_once_from_the_pod_that_succeeded() {
        let report = summarize(&[
            pod("run-0-a", "0", "Failed", Some("oom"), 0),
            pod("run-0-b", "0", "Succeeded", Some(&counts(7, 7, 0)), 10),
            pod("run-0-c", "0", "Failed", Some("late duplicate"), 20),
        ]);
        assert_eq!(report.counts.payments_processed, 7);
        assert!(report.bad_workers.is_empty(), "{report:?}");
    }

    proptest! {
        /// No message can panic the parser or make it accept inconsistent counts.
        #[test]
        fn any_message_is_parsed_or_refused(message in ".{0,200}", p in any::<i64>(), s in any::<i64>(), f in any::<i64>()) {
            let _ = parse(&message);
            if let Ok(c) = parse(&counts(p, s, f)) {
                prop_assert!(c.payments_processed >= c.payments_succeeded + c.payments_failed);
                prop_assert!(c.payments_succeeded >= 0 && c.payments_failed >= 0);
            }
        }
    }
}
