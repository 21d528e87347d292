//! Events as `kubectl describe` shows them: a repeat within the window is one event with a
//! count, a different note is an event of its own, and what the publisher remembers goes
//! with its object.

use crate::common::*;

use anyhow::Result;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use operator_core::events::EventPublisher;

#[tokio::test]
async fn a_repeated_event_is_one_event_with_a_count_until_its_object_is_forgotten() -> Result<()> {
    let server = server_with_crd().await?;
    let widget = create_widget(&server, "w", 1).await?;
    let publisher = EventPublisher::new(server.client(), "widget-operator", Some("pod-0".into()));
    let down = operator_core::reason!("PricingUnavailable");
    for _ in 0..3 {
        publisher
            .warning(&widget, down, "Price", "pricing is down")
            .await;
    }
    publisher
        .warning(&widget, down, "Price", "pricing answered 500")
        .await;

    let published = events_with_reason(&server, "PricingUnavailable");
    assert_eq!(published.len(), 2, "{published:?}");
    let repeated = published
        .iter()
        .find(|e| e["note"] == "pricing is down")
        .expect("the repeated event");
    assert_eq!(repeated["series"]["count"], 3);
    assert_eq!(repeated["type"], "Warning");
    assert_eq!(repeated["reportingController"], "widget-operator");
    assert_eq!(repeated["reportingInstance"], "pod-0");
    assert_eq!(repeated["regarding"]["name"], "w");
    assert_eq!(repeated["regarding"]["uid"], widget.uid().unwrap().as_str());
    let other = published
        .iter()
        .find(|e| e["note"] == "pricing answered 500")
        .expect("the other note's event");
    assert!(other["series"].is_null(), "{other}");
    assert_eq!(publisher.remembered(), 1, "one object has series");

    // An event the server no longer has (events expire): the repeat starts a new one.
    let api: Api<Event> = Api::default_namespaced(server.client());
    let name = repeated["metadata"]["name"].as_str().unwrap_or_default();
    api.delete(name, &DeleteParams::default()).await?;
    publisher
        .warning(&widget, down, "Price", "pricing is down")
        .await;
    let again = events_with_reason(&server, "PricingUnavailable");
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(again.iter().all(|e| e["series"].is_null()), "{again:?}");

    publisher.forget(&widget.uid().unwrap());
    assert_eq!(publisher.remembered(), 0);
    publisher
        .warning(&widget, down, "Price", "pricing is down")
        .await;
    assert_eq!(events_with_reason(&server, "PricingUnavailable").len(), 3);
    Ok(())
}
