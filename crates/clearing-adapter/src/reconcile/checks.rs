//! When the partners are checked, and the checks themselves: every partner at once, each
//! bounded by the smaller of `config.timeout` and [`MAX_CHECK_TIMEOUT`], at most every
//! `healthCheckInterval`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::jiff::Timestamp;
use operator_core::credentials::Hidden;

use super::observe::Secrets;
use crate::crd::{BankingPartnerStatus, ClearingAdapterSpec};
use crate::health::{PartnerProbe, ProbeTarget, Verdict};
use crate::validate::MIN_HEALTH_CHECK_INTERVAL;

/// No check holds a reconcile longer than this.
pub const MAX_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

fn interval(spec: &ClearingAdapterSpec) -> Duration {
    spec.config
        .health_check_interval
        .or(Duration::from_secs(30))
        .max(MIN_HEALTH_CHECK_INTERVAL)
}

/// How long until the partners are due again: zero when a partner has never been checked.
pub fn next_due(
    spec: &ClearingAdapterSpec,
    statuses: &[BankingPartnerStatus],
    now: Timestamp,
) -> Duration {
    let interval = interval(spec);
    spec.config
        .banking_partners
        .iter()
        .map(|p| {
            let last = statuses
                .iter()
                .find(|s| s.name == p.name)
                .and_then(|s| s.last_checked.as_ref());
            match last {
                None => Duration::ZERO,
                Some(at) => {
                    let since = at.0.duration_until(now).unsigned_abs();
                    interval.saturating_sub(since)
                }
            }
        })
        .min()
        .unwrap_or(interval)
}

pub fn due(spec: &ClearingAdapterSpec, statuses: &[BankingPartnerStatus], now: Timestamp) -> bool {
    next_due(spec, statuses, now).is_zero()
}

/// Checks every partner of the spec concurrently.
pub async fn run(
    probe: &dyn PartnerProbe,
    spec: &ClearingAdapterSpec,
    secrets: &Secrets,
) -> BTreeMap<String, Verdict> {
    let timeout = spec
        .config
        .timeout
        .or(MAX_CHECK_TIMEOUT)
        .min(MAX_CHECK_TIMEOUT);
    let targets: Vec<ProbeTarget> = spec
        .config
        .banking_partners
        .iter()
        .map(|p| {
            let tls = p.tls.as_ref();
            let ca_pem = tls
                .and_then(|t| t.ca_secret_ref.as_ref())
                .and_then(|r| secrets.key(&r.name, &r.key))
                .map(<[u8]>::to_vec);
            let client_identity = tls
                .and_then(|t| t.client_certificate_secret_name.as_ref())
                .and_then(|name| {
                    Some(Hidden::new((
                        secrets.key(name, "tls.crt")?.to_vec(),
                        secrets.key(name, "tls.key")?.to_vec(),
                    )))
                });
            ProbeTarget {
                partner: p.name.clone(),
                url: format!(
                    "{}{}",
                    p.endpoint.trim_end_matches('/'),
                    p.health_check_path
                ),
                ca_pem,
                client_identity,
                timeout,
            }
        })
        .collect();
    let verdicts = join_all(targets.iter().map(|t| probe.check(t))).await;
    targets
        .into_iter()
        .map(|t| t.partner)
        .zip(verdicts)
        .collect()
}
