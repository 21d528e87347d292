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
            "tradingDay must be YYYY-MM-DD, got {trading_day:?}"
        ));
    }
    let total_trades = get("totalTrades")?.parse().map_err(|_| {
        format!(
            "totalTrades must be an integer, got {:?}",
            data.get("totalTrades")
        )
    })?;
    let daily_pnl: f64 = get("dailyPnL")?
        .parse()
        .map_err(|_| format!("dailyPnL must be a number, got {:?}", data.get("dailyPnL")))?;
    if !daily_pnl.is_finite() {
        return Err("dailyPnL must be finite".into());
    }
    Ok(Report {
        trading_day,
        total_trades,
        daily_pnl,
    })
}

/// The report of one algorithm, from the watched reports.
pub fn lookup(reports: &Store<ConfigMap>, ta: &TradingAlgorithm) -> Option<Result<Report, String>> {
    let mut key = ObjectRef::<ConfigMap>::new(&report_name(&ta.name_any()));
    if let Some(ns) = ta.namespace() {
        key = key.within(&ns);
    }
    reports.get(&key).map(|cm| parse(&cm))
}

/// Which algorithm a changed report belongs to.
pub fn owner_of(cm: &ConfigMap) -> Option<ObjectRef<TradingAlgorithm>> {
    let name = cm.labels().get(REPORT_LABEL)?;
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
