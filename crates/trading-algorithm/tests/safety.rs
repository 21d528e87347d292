//! What the operator must never do to a cluster: take over another team's objects, or hang a
//! namespace deletion; and its audit record survives a namespace being deleted.

use crate::common::*;
use operator_harness::condition;

use anyhow::Result;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;
use trading_algorithm::crd::FinalReport;

/// In a namespace being deleted every create is refused, Events included: the final trades
/// and P&L are kept in status and the operator's log, and the namespace goes.
#[tokio::test]
async fn deleting_the_namespace_completes_and_the_final_figures_are_kept() -> Result<()> {
    let h = start_active("momentum-trader-prod").await?;
    h.report("momentum-trader-prod", &h.today(), 77, 1234.5)
        .await?;
    h.eventually("figures", |h| {
        h.status("momentum-trader-prod")["totalTrades"] == 77
    })
    .await?;
    let report: FinalReport = h.delete_namespace_keeping(NS, "finalReport").await?;
    assert_eq!(report.total_trades, 77);
    assert!((report.daily_pnl - 1234.5).abs() < f64::EPSILON);
    Ok(())
}

/// An algorithm whose `<name>-service` already exists for someone else reports the conflict
/// and leaves that Service alone; its other children are applied.
#[tokio::test]
async fn a_service_of_that_name_belonging_to_someone_else_is_left_alone() -> Result<()> {
    let h = start().await?;
    let services: Api<Service> = Api::namespaced(h.client(), NS);
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "momentum-trader-prod-service"},
                "spec": {"selector": {"app": "someone-else"}, "ports": [{"port": 80}]},
            }))?,
        )
        .await?;
    let before = h.get("v1", "services", "momentum-trader-prod-service");
    h.create("momentum-trader-prod").await?;

    let ready = |h: &Harness| condition(&h.status("momentum-trader-prod"), "Ready");
    h.eventually("Ready=False ChildNameConflict", |h| {
        ready(h)["reason"] == "ChildNameConflict"
    })
    .await?;
    assert!(
        ready(&h)["message"]
            .as_str()
            .is_some_and(|m| m.contains("Service momentum-trader-prod-service already exists")),
        "{}",
        ready(&h)
    );
    assert_eq!(
        h.get("v1", "services", "momentum-trader-prod-service"),
        before
    );
    assert!(
        h.get("apps/v1", "deployments", "momentum-trader-prod-deployment")
            .is_some()
    );

    // Deleting the algorithm leaves the Service.
    h.delete_until_gone::<TradingAlgorithm>(NS, "momentum-trader-prod")
        .await?;
    assert!(
        services
            .get_opt("momentum-trader-prod-service")
            .await?
            .is_some()
    );
    Ok(())
}
