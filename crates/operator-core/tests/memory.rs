//! Per-object state does not outlive its object: an operator without a finalizer (the batch
//! operator will create thousands of short-lived objects) holds flat memory.

use crate::common::*;

use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use kube::api::{Api, DeleteParams, PostParams};
use operator_core::{Context, ControllerSettings, OperatorController};

const OWNERS: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_owners_come_and_go_and_the_records_return_to_where_they_were() -> Result<()>
{
    let server = server_with_crd().await?;
    let client = server.client();
    let (children, watches) = widget_children(client.clone(), None);
    let settings = ControllerSettings {
        resync: Duration::from_secs(20),
        concurrency: 16,
        ..ControllerSettings::default()
    };
    let ctx = Context::new(
        client.clone(),
        IDENTITY,
        settings,
        WidgetOperator::default(),
    )
    .with_children(children);
    let controller = OperatorController::<Widget, _>::new(ctx).owns_children(watches);
    let ctx = controller.context();
    let before = ctx.records();
    tokio::spawn(controller.run(reconcile_widget));

    let api: Api<Widget> = Api::default_namespaced(client);
    futures::stream::iter(0..OWNERS)
        .for_each_concurrent(32, |i| {
            let api = api.clone();
            async move {
                let widget = Widget::new(&format!("w{i}"), WidgetSpec { size: 1 });
                let _ = api.create(&PostParams::default(), &widget).await;
            }
        })
        .await;
    let started = std::time::Instant::now();
    eventually_long("every child applied", Duration::from_secs(120), || {
        server.objects("v1", "configmaps").len() >= OWNERS
    })
    .await?;
    eprintln!("converged in {:?}", started.elapsed());
    let peak = ctx.records();
    assert!(
        peak >= OWNERS,
        "one apply record per child at least: {peak}"
    );

    futures::stream::iter(0..OWNERS)
        .for_each_concurrent(32, |i| {
            let api = api.clone();
            async move {
                let _ = api.delete(&format!("w{i}"), &DeleteParams::default()).await;
            }
        })
        .await;
    let deleted = std::time::Instant::now();
    eventually_long("every owner gone", Duration::from_secs(120), || {
        server.objects("example.io/v1", "widgets").is_empty()
    })
    .await?;
    eprintln!(
        "deleted in {:?}; records {}",
        deleted.elapsed(),
        ctx.records()
    );
    eventually_long(
        "records back to their starting count",
        Duration::from_secs(60),
        || ctx.records() == before,
    )
    .await?;
    eprintln!(
        "records: {before} before, {peak} at the peak, {} after",
        ctx.records()
    );
    Ok(())
}
