//! The work queue: at most `concurrency` reconciles run at once, the others wait in the
//! queue, and both show in controller-runtime's `workqueue_*` series as they happen.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use anyhow::Result;
use kube::runtime::controller::Action;
use operator_core::metrics::Metrics;
use operator_core::{Context, ControllerSettings, OperatorController};

/// How many reconciles run now, and the most that ever ran at once.
#[derive(Debug, Default)]
struct Running {
    now: AtomicUsize,
    most: AtomicUsize,
    done: AtomicUsize,
}

async fn slow_reconcile(
    _widget: Arc<Widget>,
    ctx: Arc<Context<Arc<Running>>>,
) -> Result<Action, operator_core::Error> {
    let running = &ctx.operator;
    let now = running.now.fetch_add(1, Ordering::SeqCst) + 1;
    running.most.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    running.now.fetch_sub(1, Ordering::SeqCst);
    running.done.fetch_add(1, Ordering::SeqCst);
    Ok(Action::await_change())
}

fn value(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test]
async fn objects_beyond_the_workers_wait_in_the_queue_and_are_measured_there() -> Result<()> {
    let server = server_with_crd().await?;
    for i in 0..4 {
        create_widget(&server, &format!("w{i}"), i).await?;
    }
    let metrics = Metrics::new();
    let running = Arc::new(Running::default());
    let settings = ControllerSettings {
        concurrency: 2,
        ..ControllerSettings::default()
    };
    let ctx = Context::new(server.client(), IDENTITY, settings, running.clone())
        .with_metrics(metrics.clone());
    tokio::spawn(OperatorController::<Widget, _>::new(ctx).run(slow_reconcile));

    let labels = r#"{name="widget",controller="widget"}"#;
    eventually("two waiting behind two running", || {
        let text = metrics.encode();
        value(&text, &format!("workqueue_depth{labels}")) == 2.0
            && value(
                &text,
                r#"controller_runtime_active_workers{controller="widget"}"#,
            ) == 2.0
    })
    .await?;
    let text = metrics.encode();
    assert!(
        value(
            &text,
            &format!("workqueue_longest_running_processor_seconds{labels}")
        ) > 0.0
    );
    eventually("all four reconciled", || {
        running.done.load(Ordering::SeqCst) == 4
    })
    .await?;
    assert_eq!(
        running.most.load(Ordering::SeqCst),
        2,
        "never more than the workers"
    );
    let text = metrics.encode();
    assert_eq!(value(&text, &format!("workqueue_adds_total{labels}")), 4.0);
    assert_eq!(value(&text, &format!("workqueue_depth{labels}")), 0.0);
    assert_eq!(
        value(
            &text,
            &format!("workqueue_work_duration_seconds_count{labels}")
        ),
        4.0
    );
    // The last two waited for a whole reconcile (150 ms) each.
    assert!(
        value(
            &text,
            &format!("workqueue_queue_duration_seconds_sum{labels}")
        ) >= 0.29,
        "{text}"
    );
    assert_eq!(
        value(&text, &format!("workqueue_unfinished_work_seconds{labels}")),
        0.0
    );
    assert_eq!(
        value(
            &text,
            r#"controller_runtime_max_concurrent_reconciles{controller="widget"}"#
        ),
        2.0
    );
    Ok(())
}
