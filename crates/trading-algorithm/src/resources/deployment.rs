//! `<name>-deployment`: the algorithm's pods.
//!
//! Replicas belong to the autoscaler: the Deployment is applied without `replicas` (the
//! HPA keeps it within `[minReplicas, maxReplicas]`, starting at `minReplicas`), except while
//! suspended, when the operator owns `replicas: 0` and the HPA is removed.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMapKeySelector, Container, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
    ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use operator_core::builder::WorkloadDefaults;
use operator_core::builder::{
    config_map_volume, container_port, deployment, deployment_spec, env, meta, pod_template,
    read_only_mount, resource_requests, rolling_update, tmp_mount, tmp_volume,
};
use operator_core::pod_security::restricted_container_security;
use operator_core::probes::tcp_probe;

use super::config_map::parameter_key;
use super::{ALGORITHM_PORT, child_labels, config_name, deployment_name, report_name, selector};
use crate::crd::TradingAlgorithm;

/// Image when neither the spec nor the operator's config names one: a placeholder that runs
/// as a non-root user on port 8080, so it starts under the restricted security context
/// every algorithm gets (seed 002's `nginx:1.21` runs as root and cannot).
pub const FALLBACK_IMAGE: &str = "docker.io/nginxinc/nginx-unprivileged:1.27-alpine";
/// Pod-template annotation carrying the configuration hash: in seed 002's group, not
/// operator-core's `payments.io` one (renaming it would roll every algorithm's pods).
pub const CONFIG_HASH_ANNOTATION: &str = "fintech.io/config-hash";

/// Seed 002's `defaultResources`, used when the operator's config names none.
fn fallback_resources() -> ResourceRequirements {
    resource_requests("100m", "128Mi", &[("cpu", "500m"), ("memory", "512Mi")])
}

/// The environment variable a strategy parameter arrives in: `PARAM_` and its name in upper
/// snake case (`lookbackPeriod` → `PARAM_LOOKBACKPERIOD`, `hedge.ratio` → `PARAM_HEDGE_RATIO`).
pub fn parameter_env_name(parameter: &str) -> String {
    let body: String = parameter
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("PARAM_{body}")
}

fn algorithm_env(ta: &TradingAlgorithm) -> Vec<EnvVar> {
    let spec = &ta.spec;
    let strategy = spec.trading_strategy.as_ref();
    let mut vars = Vec::new();
    if let Some(algorithm) = strategy.and_then(|s| s.algorithm) {
        vars.push(env("STRATEGY", algorithm.as_str()));
    }
    if let Some(symbols) = &spec.market_data.symbols {
        vars.push(env("SYMBOLS", symbols.join(",")));
    }
    vars.push(env(
        "MARKET_DATA_SOURCES",
        spec.market_data.sources.join(","),
    ));
    vars.push(env(
        "UPDATE_FREQUENCY",
        spec.market_data.update_frequency.clone(),
    ));
    vars.push(env(
        "MAX_POSITION_SIZE",
        spec.risk_limits.max_position_size.to_string(),
    ));
    vars.push(env(
        "DAILY_LOSS_LIMIT",
        spec.risk_limits.daily_loss_limit.to_string(),
    ));
    if let Some(stop) = spec.risk_limits.stop_loss_percentage {
        vars.push(env("STOP_LOSS_PERCENTAGE", stop.to_string()));
    }
    // Where the algorithm reports trades and P&L (the contract in `report`).
    vars.push(env("REPORT_CONFIGMAP", report_name(&ta.name_any())));
    vars.push(EnvVar {
        name: "POD_NAMESPACE".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.namespace".into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    });
    for parameter in strategy
        .and_then(|s| s.parameters.as_ref())
        .into_iter()
        .flat_map(|p| p.keys())
    {
        vars.push(EnvVar {
            name: parameter_env_name(parameter),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: config_name(&ta.name_any()),
                    key: parameter_key(parameter),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }
    vars
}

pub fn desired_deployment(
    ta: &TradingAlgorithm,
    defaults: &WorkloadDefaults,
    config_hash: &str,
    suspended: bool,
) -> Deployment {
    let name = ta.name_any();
    let mut pod_labels = selector(ta);
    if let Some(algorithm) = ta.spec.trading_strategy.as_ref().and_then(|s| s.algorithm) {
        pod_labels.insert("fintech.io/strategy".into(), algorithm.as_str().into());
    }
    pod_labels.extend(child_labels(ta, defaults));
    let image = ta
        .spec
        .image
        .clone()
        .or_else(|| defaults.default_image.clone())
        .unwrap_or_else(|| FALLBACK_IMAGE.to_string());
    let health = ta.spec.health_check.clone().unwrap_or_default();
    let container = Container {
        name: "algorithm".into(),
        image: Some(image),
        ports: Some(vec![container_port("http", ALGORITHM_PORT)]),
        env: Some(algorithm_env(ta)),
        liveness_probe: Some(match health.liveness.as_ref() {
            Some(probe) => probe.probe(),
            None => tcp_probe(ALGORITHM_PORT, 15, 20),
        }),
        readiness_probe: Some(match health.readiness.as_ref() {
            Some(probe) => probe.probe(),
            None => tcp_probe(ALGORITHM_PORT, 5, 10),
        }),
        resources: Some(defaults.resources(None, fallback_resources)),
        security_context: Some(restricted_container_security()),
        volume_mounts: Some(vec![read_only_mount("config", "/etc/trading"), tmp_mount()]),
        ..Container::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        // A token only for an algorithm whose spec names an account to use it.
        service_account_name: ta.spec.service_account_name.clone(),
        automount_service_account_token: Some(ta.spec.service_account_name.is_some()),
        security_context: Some(defaults.pod_security()),
        volumes: Some(vec![
            config_map_volume("config", config_name(&name)),
            tmp_volume(),
        ]),
        ..PodSpec::default()
    };
    let hash = BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_string(), config_hash.to_string())]);
    let template = pod_template(pod_labels, hash, pod);
    // Never drop below the running capacity while rolling: surge one, then retire one.
    let strategy = rolling_update(IntOrString::Int(1), IntOrString::Int(0));
    deployment(
        meta(deployment_name(&name), child_labels(ta, defaults)),
        deployment_spec(
            suspended.then_some(0),
            selector(ta),
            Some(strategy),
            template,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::sample;

    fn container(d: &Deployment) -> Container {
        d.spec
            .clone()
            .and_then(|s| s.template.spec)
            .map(|p| p.containers[0].clone())
            .unwrap_or_default()
    }

    #[test]
    fn the_algorithm_container_carries_the_spec() {
        let d = desired_deployment(&sample(), &WorkloadDefaults::default(), "h1", false);
        let c = container(&d);
        assert_eq!(c.name, "algorithm");
        assert_eq!(c.image.as_deref(), Some(FALLBACK_IMAGE));
        assert_eq!(
            operator_harness::env_value(&d, "STRATEGY").as_deref(),
            Some("momentum")
        );
        assert_eq!(
            operator_harness::env_value(&d, "SYMBOLS").as_deref(),
            Some("AAPL,GOOGL,MSFT,AMZN,TSLA")
        );
        assert_eq!(
            operator_harness::env_value(&d, "MARKET_DATA_SOURCES").as_deref(),
            Some("NYSE,NASDAQ")
        );
        assert_eq!(
            operator_harness::env_value(&d, "UPDATE_FREQUENCY").as_deref(),
            Some("50ms")
        );
        assert_eq!(
            operator_harness::env_value(&d, "MAX_POSITION_SIZE").as_deref(),
            Some("5000000")
        );
        assert_eq!(
            operator_harness::env_value(&d, "DAILY_LOSS_LIMIT").as_deref(),
            Some("100000")
        );
        assert_eq!(
            operator_harness::env_value(&d, "STOP_LOSS_PERCENTAGE").as_deref(),
            Some("0.03")
        );
        let param = c
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "PARAM_LOOKBACKPERIOD");
        let key = param
            .and_then(|p| p.value_from.clone())
            .and_then(|v| v.config_map_key_ref)
            .map(|r| (r.name, r.key));
        assert_eq!(
            key,
            Some((
                "momentum-trader-prod-config".to_string(),
                "parameters.lookbackPeriod".to_string()
            ))
        );

        let spec = d.spec.unwrap_or_default();
        assert_eq!(spec.replicas, None, "replicas are the autoscaler's");
        let pod_labels = spec
            .template
            .metadata
            .and_then(|m| m.labels)
            .unwrap_or_default();
        assert_eq!(pod_labels["app"], "momentum-trader-prod");
        assert_eq!(pod_labels["fintech.io/strategy"], "momentum");
    }

    #[test]
    fn pods_run_restricted() {
        let d = desired_deployment(&sample(), &WorkloadDefaults::default(), "h1", false);
        let sc = container(&d).security_context.unwrap_or_default();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            sc.capabilities.and_then(|c| c.drop),
            Some(vec!["ALL".to_string()])
        );
        assert_eq!(
            sc.seccomp_profile.map(|p| p.type_).as_deref(),
            Some("RuntimeDefault")
        );
    }

    #[test]
    fn image_and_resources_come_from_spec_then_config() {
        let mut defaults = WorkloadDefaults {
            default_image: Some("registry/algo:2".into()),
            ..WorkloadDefaults::default()
        };
        let d = desired_deployment(&sample(), &defaults, "h", false);
        assert_eq!(container(&d).image.as_deref(), Some("registry/algo:2"));
        let mut ta = sample();
        ta.spec.image = Some("registry/algo:3".into());
        defaults.default_resources = Some(ResourceRequirements::default());
        let d = desired_deployment(&ta, &defaults, "h", false);
        assert_eq!(container(&d).image.as_deref(), Some("registry/algo:3"));
        assert_eq!(
            container(&d).resources,
            Some(ResourceRequirements::default())
        );
    }

    #[test]
    fn parameter_env_names() {
        assert_eq!(parameter_env_name("lookbackPeriod"), "PARAM_LOOKBACKPERIOD");
        assert_eq!(parameter_env_name("hedge.ratio-2"), "PARAM_HEDGE_RATIO_2");
    }
}
