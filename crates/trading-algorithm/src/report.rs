//! How a running algorithm reports its trades and P&L to the operator.
//!
//! The contract: the algorithm keeps a ConfigMap named `<name>-report` (its pods get the name
//! in `REPORT_CONFIGMAP` and the namespace in `POD_NAMESPACE`), labelled
//! `fintech.io/report-for: <name>`, with
//!
//! | key | value |
//! |---|---|
//! | `tradingDay` | the UTC day the figures are for, `YYYY-MM-DD` |
//! | `totalTrades` | trades executed that day, an integer |
//! | `dailyPnL` | profit and loss that day, a decimal (negative for a loss) |
//!
//! The operator watches these ConfigMaps, so a report that breaches the daily loss limit
//! halts trading at once. Granting the algorithm's ServiceAccount `get`/`update`/`patch` on
//! its own report ConfigMap is the deployer's part (see the operator's README).

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::crd::TradingAlgorithm;
use crate::resources::report_name;

/// The label that ties a report to its algorithm.
pub const REPORT_LABEL: &str = "fintech.io/report-for";

/// The keys of a report, and the most of each value the operator keeps: a well-formed value
/// is a few dozen characters, and anyone who can write a ConfigMap can label one as a report.
const KEYS: [&str; 3] = ["tradingDay", "totalTrades", "dailyPnL"];
const MAX_VALUE: usize = 64;

/// What the report cache keeps of a labelled ConfigMap: its name, namespace, report label and
/// the three keys (each cut to [`MAX_VALUE`] characters); nothing at all of a ConfigMap whose
/// name is not `<algorithm>-report` for the algorithm it names. Bounds the memory anyone who
/// can write ConfigMaps can make the operator hold.
pub fn compact(cm: &mut ConfigMap) {
    let algorithm = cm.labels().get(REPORT_LABEL).cloned();
    let is_report = algorithm
        .as_ref()
        .is_some_and(|a| cm.metadata.name.as_deref() == Some(report_name(a).as_str()));
    let data = cm.data.take().unwrap_or_default();
    cm.data = is_report.then(|| {
        KEYS.iter()
            .filter_map(|k| {
                data.get(*k)
                    .map(|v| ((*k).to_string(), v.chars().take(MAX_VALUE).collect()))
            })
            .collect()
    });
    cm.binary_data = None;
    cm.metadata.annotations = None;
    cm.metadata.managed_fields = None;
    cm.metadata.owner_references = None;
    cm.metadata.labels = algorithm.map(|a| [(REPORT_LABEL.to_string(), a)].into());
}

/// One day's figures, as the algorithm reported them.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub trading_day: String,
    pub total_trades: i64,
    pub daily_pnl: f64,
}

/// Reads a report; the error says which key is missing or malformed.
pub fn parse(cm: &ConfigMap) -> Result<Report, String> {
    let data = cm.data.clone().unwrap_or_default();
    let get = |key: &str| {
        data.get(key)
            .map(|v| v.trim().to_string())
            .ok_or_else(|| format!("missing key {key}"))
    };
    let trading_day = get("tradingDay")?;
    if k8s_openapi::jiff::civil::Date::strptime("%Y-%m-%d", &trading_day).is_err() {
        return Err(format!(
            "tradingDay must be YYYY-MM-DD, got \"{trading_day}\""
        ));
    }
    let total_trades = get("totalTrades")?.parse().map_err(|_| {
        format!(
            "totalTrades must be an integer, got \"{}\"",
            data.get("totalTrades")
                .map(String::as_str)
                .unwrap_or_default()
        )
    })?;
    let daily_pnl: f64 = get("dailyPnL")?.parse().map_err(|_| {
        format!(
            "dailyPnL must be a decimal number, got \"{}\"",
            data.get("dailyPnL").map(String::as_str).unwrap_or_default()
        )
    })?;
    if !daily_pnl.is_finite() {
        return Err(format!(
            "dailyPnL must be a finite decimal number, got \"{}\"",
            data.get("dailyPnL").map(String::as_str).unwrap_or_default()
        ));
    }
    Ok(Report {
        trading_day,
        total_trades,
        daily_pnl,
    })
}

/// The report of one algorithm, from the watched reports: `<name>-report`, labelled for it.
pub fn lookup(reports: &Store<ConfigMap>, ta: &TradingAlgorithm) -> Option<Result<Report, String>> {
    let name = ta.name_any();
    let mut key = ObjectRef::<ConfigMap>::new(&report_name(&name));
    if let Some(ns) = ta.namespace() {
        key = key.within(&ns);
    }
    reports
        .get(&key)
        .filter(|cm| cm.labels().get(REPORT_LABEL) == Some(&name))
        .map(|cm| parse(&cm))
}

/// Which algorithm a changed report belongs to; none for a labelled ConfigMap that is not
/// named `<algorithm>-report`.
pub fn owner_of(cm: &ConfigMap) -> Option<ObjectRef<TradingAlgorithm>> {
    let name = cm.labels().get(REPORT_LABEL)?;
    if cm.metadata.name.as_deref() != Some(report_name(name).as_str()) {
        return None;
    }
    let mut key = ObjectRef::new(name);
    if let Some(ns) = cm.namespace() {
        key = key.within(&ns);
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn report(pairs: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ConfigMap::default()
        }
    }

    #[test]
    fn the_cache_keeps_only_the_report_keys_cut_short() {
        let mut cm = report(&[
            ("tradingDay", "2026-11-24"),
            ("totalTrades", "1542"),
            ("dailyPnL", &"9".repeat(500_000)),
            ("padding", &"x".repeat(500_000)),
        ]);
        cm.metadata.name = Some("algo-report".into());
        cm.metadata.labels = Some([(REPORT_LABEL.to_string(), "algo".to_string())].into());
        cm.metadata.annotations = Some([("big".to_string(), "y".repeat(100_000))].into());
        compact(&mut cm);
        let size = serde_json::to_vec(&cm)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        assert!(size < 1_000, "{size} bytes kept");
        let data = cm.data.clone().unwrap_or_default();
        assert_eq!(data.len(), 3);
        assert_eq!(data["dailyPnL"].len(), MAX_VALUE);
        assert_eq!(owner_of(&cm).map(|r| r.name), Some("algo".to_string()));
    }

    #[test]
    fn a_labelled_configmap_not_named_for_its_algorithm_is_ignored() {
        let mut cm = report(&[("tradingDay", "2026-11-24"), ("padding", &"x".repeat(1000))]);
        cm.metadata.name = Some("something-else".into());
        cm.metadata.labels = Some([(REPORT_LABEL.to_string(), "algo".to_string())].into());
        compact(&mut cm);
        assert_eq!(cm.data, None);
        assert!(owner_of(&cm).is_none());
    }

    #[test]
    fn a_well_formed_report() {
        let r = parse(&report(&[
            ("tradingDay", "2026-11-24"),
            ("totalTrades", "1542"),
            ("dailyPnL", "15420.50"),
        ]));
        assert_eq!(
            r,
            Ok(Report {
                trading_day: "2026-11-24".into(),
                total_trades: 1542,
                daily_pnl: 15420.5
            })
        );
    }

    #[test]
    fn malformed_reports_say_what_is_wrong() {
        let e = |pairs: &[(&str, &str)]| parse(&report(pairs)).err().unwrap_or_default();
        assert!(e(&[("totalTrades", "1"), ("dailyPnL", "1")]).contains("tradingDay"));
        assert!(
            e(&[
                ("tradingDay", "yesterday"),
                ("totalTrades", "1"),
                ("dailyPnL", "1")
            ])
            .contains("YYYY-MM-DD")
        );
        assert!(
            e(&[
                ("tradingDay", "2026-11-24"),
                ("totalTrades", "many"),
                ("dailyPnL", "1")
            ])
            .contains("totalTrades")
        );
        assert!(
            e(&[
                ("tradingDay", "2026-11-24"),
                ("totalTrades", "1"),
                ("dailyPnL", "NaN")
            ])
            .contains("finite")
        );
    }
}
