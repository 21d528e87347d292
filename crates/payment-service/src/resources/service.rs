//! The Service named after the PaymentService: port 8080 (`http`), and the metrics port when
//! Prometheus scraping is on. It selects every pod of the service (stable and canary, so
//! traffic follows their replica ratio), or for BlueGreen only the active colour's — except
//! while a change of strategy hands over, when it selects both the old and the new pods.

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{meta, named_port, service};

use super::{HTTP_PORT, TRACK_LABEL, child_labels, selector};
use crate::crd::PaymentService;
use crate::rollout::{RolloutPlan, Track};

pub fn desired_service(
    ps: &PaymentService,
    plan: &RolloutPlan,
    defaults: &WorkloadDefaults,
) -> Service {
    let mut selector = selector(ps);
    if let Some(color) = plan.serving_color
        && plan.retiring.is_empty()
    {
        selector.insert(TRACK_LABEL.into(), Track::Color(color).label().into());
    }
    let mut ports = vec![named_port("http", HTTP_PORT)];
    if let Some(p) = ps.spec.prometheus() {
        ports.push(named_port("metrics", p.port));
    }
    service(
        meta(ps.name_any(), child_labels(ps, defaults)),
        selector,
        ports,
    )
}

/// BlueGreen's `previewService`: a Service of that name selecting the colour that does not
/// take traffic — the new version while a rollout brings it up or waits for promotion, no
/// pod between rollouts — so the new version can be tried before the switch.
pub fn desired_preview_service(
    ps: &PaymentService,
    plan: &RolloutPlan,
    defaults: &WorkloadDefaults,
) -> Option<Service> {
    let name = ps.spec.blue_green()?.preview_service.clone()?;
    let serving = plan.serving_color?;
    let mut selector = selector(ps);
    selector.insert(
        TRACK_LABEL.into(),
        Track::Color(serving.other()).label().into(),
    );
    let ports = vec![named_port("http", HTTP_PORT)];
    Some(service(
        meta(name, child_labels(ps, defaults)),
        selector,
        ports,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Color;
    use crate::resources::tests::{first_plan, service, spec};

    #[test]
    fn blue_green_selects_the_active_colour_and_others_select_every_pod() {
        let ps = service(spec());
        let mut plan = first_plan(&ps);
        plan.serving_color = Some(Color::Green);
        let service_selector = |plan: &RolloutPlan| {
            desired_service(&ps, plan, &WorkloadDefaults::default())
                .spec
                .and_then(|s| s.selector)
                .unwrap_or_default()
        };
        assert_eq!(
            service_selector(&plan).get(TRACK_LABEL).map(String::as_str),
            Some("green")
        );
        plan.serving_color = Some(Color::Blue);
        assert_eq!(
            service_selector(&plan).get(TRACK_LABEL).map(String::as_str),
            Some("stable"),
            "blue is the stable Deployment"
        );
        plan.retiring = vec!["payment-initiation-service".into()];
        assert_eq!(
            service_selector(&plan).get(TRACK_LABEL),
            None,
            "both old and new pods serve"
        );
        plan.retiring.clear();
        plan.serving_color = None;
        assert_eq!(service_selector(&plan), selector(&ps));
    }

    #[test]
    fn the_preview_service_selects_the_colour_not_serving() {
        let mut spec = spec();
        let ps = service(spec.clone());
        let mut plan = first_plan(&ps);
        plan.serving_color = Some(Color::Blue);
        assert!(
            desired_preview_service(&ps, &plan, &WorkloadDefaults::default()).is_none(),
            "none unless asked for"
        );
        if let Some(b) = spec
            .deployment_strategy
            .as_mut()
            .and_then(|s| s.blue_green.as_mut())
        {
            b.preview_service = Some("checkout-preview".into());
        }
        let ps = service(spec);
        let preview = desired_preview_service(&ps, &plan, &WorkloadDefaults::default());
        let selector = preview
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        assert_eq!(
            preview.and_then(|s| s.metadata.name).as_deref(),
            Some("checkout-preview")
        );
        assert_eq!(selector.get(TRACK_LABEL).map(String::as_str), Some("green"));
        plan.serving_color = Some(Color::Green);
        let selector = desired_preview_service(&ps, &plan, &WorkloadDefaults::default())
            .and_then(|s| s.spec)
            .and_then(|s| s.selector)
            .unwrap_or_default();
        assert_eq!(
            selector.get(TRACK_LABEL).map(String::as_str),
            Some("stable"),
            "after the switch the preview follows the other colour"
        );
    }

    #[test]
    fn exposes_http_and_metrics() {
        let ps = service(spec());
        let ports = desired_service(&ps, &first_plan(&ps), &WorkloadDefaults::default())
            .spec
            .and_then(|s| s.ports)
            .unwrap_or_default();
        let ports: Vec<_> = ports.iter().map(|p| p.port).collect();
        assert_eq!(ports, vec![8080, 8081]);
    }
}
