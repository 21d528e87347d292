//! An operator's own error type: the controller runs any `ReconcileError`. A spec error is
//! reported each time it is found and not retried quickly; a transient one is retried with
//! backoff and reported once when it starts and once when it clears; both are counted by
//! their bounded reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use anyhow::Result;
use kube::runtime::controller::Action;
use operator_core::conditions::Reason;
use operator_core::metrics::Metrics;
use operator_core::{Context, ControllerSettings, OperatorController, ReconcileError, reason};
use testkit::ApiServer;

#[derive(Debug, thiserror::Error)]
enum GadgetError {
    #[error("spec.size is {0}: set it to 0 or more")]
    NegativeSize(i32),
    #[error("the pricing service did not answer; retrying")]
    PricingUnavailable,
    #[error(transparent)]
    Core(#[from] operator_core::Error),
}

impl ReconcileError for GadgetError {
    fn is_spec_error(&self) -> bool {
        match self {
            Self::NegativeSize(_) => true,
            Self::PricingUnavailable => false,
            Self::Core(e) => e.is_spec_error(),
        }
    }

    fn reason(&self) -> Reason {
        match self {
            Self::NegativeSize(_) => reason!("NegativeSize"),
            Self::PricingUnavailable => reason!("PricingUnavailable"),
            Self::Core(e) => e.reason(),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Gadgets {
    /// How many passes still find the pricing service down.
    outage: Arc<AtomicUsize>,
    /// How many passes of a widget of the unlucky size still panic.
    panics: Arc<AtomicUsize>,
}

/// The size whose reconcile has a bug.
const UNLUCKY: i32 = 13;

async fn reconcile(widget: Arc<Widget>, ctx: Arc<Context<Gadgets>>) -> Result<Action, GadgetError> {
    if widget.spec.size < 0 {
        return Err(GadgetError::NegativeSize(widget.spec.size));
    }
    if widget.spec.size == UNLUCKY
        && ctx
            .operator
            .panics
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        panic!("index out of bounds: the len is 13 but the index is 13");
    }
    let down = &ctx.operator.outage;
    if down
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Err(GadgetError::PricingUnavailable);
    }
    let mut pass = ctx.children.pass(&*widget);
    pass.apply(desired_configmap(&widget, "config")).await?;
    pass.finish().await?;
    Ok(ctx.resync())
}

fn start(server: &ApiServer, outage: usize) -> Metrics {
    start_with(server, outage, 0)
}

fn start_with(server: &ApiServer, outage: usize, panics: usize) -> Metrics {
    let client = server.client();
    let (children, watches) = widget_children(client.clone(), None);
    let metrics = Metrics::new();
    let settings = ControllerSettings {
        resync: Duration::from_secs(30),
        backoff: operator_core::Backoff {
            base: Duration::from_millis(20),
            max: Duration::from_millis(200),
            jitter: 0.0,
        },
        ..ControllerSettings::default()
    };
    let gadgets = Gadgets {
        outage: Arc::new(AtomicUsize::new(outage)),
        panics: Arc::new(AtomicUsize::new(panics)),
    };
    let ctx = Context::new(client, IDENTITY, settings, gadgets)
        .with_children(children)
        .with_metrics(metrics.clone());
    let controller = OperatorController::<Widget, _>::new(ctx).owns_children(watches);
    tokio::spawn(controller.run(reconcile));
    metrics
}

#[tokio::test]
async fn an_operators_spec_error_is_a_warning_with_its_reason_and_no_retry_storm() -> Result<()> {
    let server = server_with_crd().await?;
    let metrics = start(&server, 0);
    create_widget(&server, "w", -1).await?;
    eventually("the Warning", || {
        !events_with_reason(&server, "NegativeSize").is_empty()
    })
    .await?;
    let warning = &events_with_reason(&server, "NegativeSize")[0];
    assert_eq!(warning["type"], "Warning");
    assert!(
        warning["note"]
            .as_str()
            .is_some_and(|n| n.contains("set it to 0 or more"))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let exposition = metrics.encode();
    assert!(
        exposition.contains(
            r#"operator_reconcile_errors_by_reason_total{controller="widget",reason="NegativeSize"} 1"#
        ),
        "one failure, not retried with backoff: {exposition}"
    );
    Ok(())
}

#[tokio::test]
async fn an_operators_transient_error_warns_once_then_recovers() -> Result<()> {
    let server = server_with_crd().await?;
    let metrics = start(&server, 3);
    create_widget(&server, "w", 1).await?;
    eventually("the child despite the outage", || {
        server
            .object("v1", "configmaps", "default", "w-config")
            .is_some()
    })
    .await?;
    eventually("the recovery", || {
        !events_with_reason(&server, "Recovered").is_empty()
    })
    .await?;
    let warnings = events_with_reason(&server, "PricingUnavailable");
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]["series"].is_null(),
        "one Warning when the outage starts, not one per retry: {}",
        warnings[0]
    );
    assert!(metrics.encode().contains(
        r#"operator_reconcile_errors_by_reason_total{controller="widget",reason="PricingUnavailable"} 3"#
    ));
    Ok(())
}

/// A reconcile that panics is a bug in the operator: it is caught (the other objects keep
/// being reconciled), reported once as a Warning that says so, counted as controller-runtime
/// counts it, and retried with backoff until it passes.
#[tokio::test]
async fn a_panicking_reconcile_is_caught_reported_and_retried_while_others_go_on() -> Result<()> {
    let server = server_with_crd().await?;
    let metrics = start_with(&server, 0, 2);
    create_widget(&server, "unlucky", UNLUCKY).await?;
    create_widget(&server, "fine", 1).await?;
    eventually("the fine widget's child", || {
        server
            .object("v1", "configmaps", "default", "fine-config")
            .is_some()
    })
    .await?;
    eventually("the unlucky widget's child, after two panics", || {
        server
            .object("v1", "configmaps", "default", "unlucky-config")
            .is_some()
    })
    .await?;
    eventually("the recovery", || {
        !events_with_reason(&server, "Recovered").is_empty()
    })
    .await?;
    let warnings = events_with_reason(&server, "ReconcilePanicked");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let note = warnings[0]["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("index out of bounds") && note.contains("defect in the operator"),
        "{note}"
    );
    let exposition = metrics.encode();
    for expected in [
        r#"controller_runtime_reconcile_panics_total{controller="widget"} 2"#,
        r#"workqueue_retries_total{name="widget",controller="widget"} 2"#,
        r#"controller_runtime_max_concurrent_reconciles{controller="widget"} 8"#,
        r#"workqueue_depth{name="widget",controller="widget"} 0"#,
        r#"controller_runtime_active_workers{controller="widget"} 0"#,
        r#"operator_reconcile_errors_by_reason_total{controller="widget",reason="ReconcilePanicked"} 2"#,
    ] {
        assert!(
            exposition.contains(expected),
            "missing {expected} in\n{exposition}"
        );
    }
    Ok(())
}
