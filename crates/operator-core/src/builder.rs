//! Pure builders for the children every operator writes the same way: metadata, a
//! Deployment and its pod template, a Service of named ports, a disruption budget, an
//! autoscaler on a Deployment. An operator's
//! `resources/` builder then states only its domain (which ports, which floor, which
//! metrics). The selector is always passed in: a Deployment's selector cannot change, so
//! each operator keeps the one its pods have carried from the start.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior,
    HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    ObjectFieldSelector, PodSpec, PodTemplateSpec, SecretKeySelector, SecretVolumeSource, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use serde::Deserialize;

/// The pod-template annotation with the hash of what the pods were started with (their
/// ConfigMaps, the Secrets' versions): a change rolls the pods, nothing else does.
pub const CONFIG_HASH_ANNOTATION: &str = "payments.io/config-hash";

/// Defaults for the workloads any operator creates (seed 002's `trading:` section), read
/// from the operator's section of the file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadDefaults {
    pub default_image: Option<String>,
    pub default_resources: Option<ResourceRequirements>,
    #[serde(default)]
    pub default_labels: BTreeMap<String, String>,
    /// The namespace Prometheus scrapes from: each workload's NetworkPolicy lets it reach the
    /// metrics port. Default `monitoring`.
    pub monitoring_namespace: Option<String>,
    /// The user (and group, and `fsGroup`) every workload pod runs as when its spec names
    /// none. Unset, the default: the image's own non-root user, or on OpenShift the one the
    /// namespace's range assigns. Set it (65532 is distroless' `nonroot`) on a cluster without
    /// such an assignment for images whose default user is root.
    pub run_as_user: Option<i64>,
    /// Where the `runbook_url` of every alert the operator writes points: `<base>#<section>`.
    /// Default [`crate::monitoring::RUNBOOK_BASE`], the base deploy/monitoring's rules use.
    pub runbook_base: Option<String>,
}

impl WorkloadDefaults {
    /// Labels of a child: the operator's `defaultLabels`, then the resource's `own` (which
    /// win). The standard `app.kubernetes.io/*` ones are added when it is applied.
    pub fn labels<K: Into<String>>(&self, own: impl IntoIterator<Item = (K, String)>) -> Labels {
        let mut labels = self.default_labels.clone();
        labels.extend(own.into_iter().map(|(k, v)| (k.into(), v)));
        labels
    }

    /// The resources of a workload: the spec's, else the operator's config's
    /// (`defaultResources`), else the operator's own `fallback`.
    pub fn resources(
        &self,
        spec: Option<&ResourceRequirements>,
        fallback: fn() -> ResourceRequirements,
    ) -> ResourceRequirements {
        spec.or(self.default_resources.as_ref())
            .cloned()
            .unwrap_or_else(fallback)
    }

    /// [`Self::monitoring_namespace`] or its default.
    pub fn monitoring_namespace(&self) -> &str {
        self.monitoring_namespace.as_deref().unwrap_or("monitoring")
    }

    /// The link to one section of the runbooks, under [`Self::runbook_base`] or its default.
    pub fn runbook(&self, section: &str) -> String {
        let base = self.runbook_base.as_deref();
        format!(
            "{}#{section}",
            base.unwrap_or(crate::monitoring::RUNBOOK_BASE)
        )
    }

    /// The restricted security context of a workload pod, as [`Self::run_as_user`] says.
    pub fn pod_security(&self) -> k8s_openapi::api::core::v1::PodSecurityContext {
        crate::pod_security::restricted_pod_security(self.run_as_user)
    }
}

/// Label keys and values, sorted (as the API server returns them).
pub type Labels = BTreeMap<String, String>;

/// A child's metadata: its name and labels (owner and the standard labels are added when
/// it is applied).
pub fn meta(name: impl Into<String>, labels: Labels) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// A container's environment variable with a plain value (never a secret's: those are
/// [`env_from_secret`]).
pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// An environment variable from a field of the pod (`metadata.name`, `status.podIP`).
pub fn env_from_field(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// An environment variable from a key of a Secret, by reference: the value never appears
/// in the pod template, so never in the operator's writes or logs.
pub fn env_from_secret(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(optional),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// The name of the writable `/tmp` every pod gets (its root filesystem is read-only).
pub const TMP_VOLUME: &str = "tmp";

/// The writable `/tmp` a read-only root filesystem leaves a container: an emptyDir.
pub fn tmp_volume() -> Volume {
    Volume {
        name: TMP_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// [`tmp_volume`] mounted at `/tmp`.
pub fn tmp_mount() -> VolumeMount {
    mount(TMP_VOLUME, "/tmp")
}

/// A volume named `name` holding the keys of ConfigMap `config_map` as files.
pub fn config_map_volume(name: &str, config_map: impl Into<String>) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.into(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// A volume named `name` holding the keys of Secret `secret` as files of `mode` (e.g. 0o440:
/// readable by the pod's fsGroup, never by others).
pub fn secret_volume(name: &str, secret: impl Into<String>, mode: i32) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            default_mode: Some(mode),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// Volume `name` mounted at `path`, writable.
pub fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    }
}

/// Volume `name` mounted at `path`, read-only (configuration, secrets).
pub fn read_only_mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        read_only: Some(true),
        ..mount(name, path)
    }
}

/// The pods of one resource by the seeds' `app` label (its name): what PaymentService and
/// TradingAlgorithm pods have carried from the start.
pub fn app_selector(name: &str) -> Labels {
    Labels::from([("app".to_string(), name.to_string())])
}

/// The pods of one resource: `app.kubernetes.io/name` (the operand) and
/// `app.kubernetes.io/instance` (the resource's name).
pub fn instance_selector(app_name: &str, instance: &str) -> Labels {
    Labels::from([
        ("app.kubernetes.io/name".to_string(), app_name.to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            instance.to_string(),
        ),
    ])
}

/// A TCP port of a Service, sent to the pods' container port of the same name (so the
/// container's port number can change without the Service).
pub fn named_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// A Deployment: its metadata and spec (see [`deployment_spec`]).
pub fn deployment(meta: ObjectMeta, spec: DeploymentSpec) -> Deployment {
    Deployment {
        metadata: meta,
        spec: Some(spec),
        ..Deployment::default()
    }
}

/// What a Deployment runs: `replicas` pods (`None` while an autoscaler owns the count) from
/// `template`, selected by `selector` (immutable: the one the pods have always carried),
/// replaced as `strategy` says (`None`: Kubernetes' default).
pub fn deployment_spec(
    replicas: Option<i32>,
    selector: Labels,
    strategy: Option<DeploymentStrategy>,
    template: PodTemplateSpec,
) -> DeploymentSpec {
    DeploymentSpec {
        replicas,
        selector: LabelSelector {
            match_labels: Some(selector),
            ..LabelSelector::default()
        },
        strategy,
        template,
        ..DeploymentSpec::default()
    }
}

/// A rolling update that starts at most `max_surge` pods beyond the count and lets at most
/// `max_unavailable` be missing while it rolls.
pub fn rolling_update(max_surge: IntOrString, max_unavailable: IntOrString) -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(max_surge),
            max_unavailable: Some(max_unavailable),
        }),
    }
}

/// A pod template: the pods' labels and annotations (see [`config_hash`]), and the pod.
pub fn pod_template(labels: Labels, annotations: Labels, spec: PodSpec) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(spec),
    }
}

/// The pod annotations that carry `hash`, the hash of what the pods were started with
/// ([`CONFIG_HASH_ANNOTATION`]).
pub fn config_hash(hash: impl Into<String>) -> Labels {
    BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_string(), hash.into())])
}

/// A ClusterIP Service in front of the pods `selector` selects: reachable inside the
/// cluster only (exposing payments beyond it is the platform's decision, not an operator's).
pub fn service(meta: ObjectMeta, selector: Labels, ports: Vec<ServicePort>) -> Service {
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// A PodDisruptionBudget that lets a voluntary disruption (a node drain) take at most one
/// of the selected pods at a time.
pub fn one_pod_at_a_time(meta: ObjectMeta, selector: Labels) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// The replicas an autoscaler keeps a Deployment between, and on what.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scaling {
    pub min_replicas: i32,
    pub max_replicas: i32,
    /// None: Kubernetes' default, 80% CPU.
    pub metrics: Vec<MetricSpec>,
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

/// A HorizontalPodAutoscaler of the Deployment named `deployment`.
pub fn deployment_autoscaler(
    meta: ObjectMeta,
    deployment: impl Into<String>,
    scaling: Scaling,
) -> HorizontalPodAutoscaler {
    HorizontalPodAutoscaler {
        metadata: meta,
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: deployment.into(),
            },
            min_replicas: Some(scaling.min_replicas),
            max_replicas: scaling.max_replicas,
            metrics: (!scaling.metrics.is_empty()).then_some(scaling.metrics),
            behavior: scaling.behavior,
        }),
        ..HorizontalPodAutoscaler::default()
    }
}

/// Scale on the pods' average use of `resource` (`cpu`, `memory`), in percent of what they
/// request.
pub fn utilization(resource: &str, percent: i32) -> MetricSpec {
    MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: resource.into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(percent),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }
}

/// What an autoscaler scales on: CPU and memory utilization where a target is given, then
/// the resource's own metrics (External, Pods), in that order.
pub fn scaling_metrics(
    cpu: Option<i32>,
    memory: Option<i32>,
    own: &[MetricSpec],
) -> Vec<MetricSpec> {
    [("cpu", cpu), ("memory", memory)]
        .into_iter()
        .filter_map(|(resource, percent)| percent.map(|p| utilization(resource, p)))
        .chain(own.iter().cloned())
        .collect()
}

/// A named TCP port of a container (`http`, `metrics`): what Services and probes refer to.
pub fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

/// Requests of `cpu` and `memory`, and limits of the `limits` given (`("memory", "1Gi")`):
/// a workload's resources when neither its spec nor the operator's config names any.
pub fn resource_requests(cpu: &str, memory: &str, limits: &[(&str, &str)]) -> ResourceRequirements {
    let quantity = |s: &str| Quantity(s.to_string());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), quantity(cpu)),
            ("memory".into(), quantity(memory)),
        ])),
        limits: Some(
            limits
                .iter()
                .map(|(resource, amount)| (resource.to_string(), quantity(amount)))
                .collect(),
        ),
        ..ResourceRequirements::default()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn a_budget_and_a_service_select_exactly_the_selector(
            selector in proptest::collection::btree_map("[a-z]{1,8}", "[a-z0-9]{1,8}", 1..4),
            port in 1..65535i32,
        ) {
            let pdb = one_pod_at_a_time(meta("x", Labels::new()), selector.clone());
            let spec = pdb.spec.unwrap_or_default();
            prop_assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
            prop_assert_eq!(spec.selector.and_then(|s| s.match_labels), Some(selector.clone()));
            let svc = service(meta("x", Labels::new()), selector.clone(), vec![named_port("http", port)]);
            let spec = svc.spec.unwrap_or_default();
            prop_assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
            prop_assert_eq!(spec.selector, Some(selector));
            let ports = spec.ports.unwrap_or_default();
            prop_assert_eq!(ports[0].port, port);
            prop_assert_eq!(ports[0].target_port.clone(), Some(IntOrString::String("http".into())));
        }

        #[test]
        fn an_autoscaler_targets_its_deployment_within_its_bounds(
            min in 1..10i32, extra in 0..10i32, cpu in proptest::option::of(1..100i32),
        ) {
            let metrics: Vec<MetricSpec> = cpu.map(|c| utilization("cpu", c)).into_iter().collect();
            let scaling = Scaling { min_replicas: min, max_replicas: min + extra, metrics, behavior: None };
            let hpa = deployment_autoscaler(meta("x", Labels::new()), "x-blue", scaling);
            let spec = hpa.spec.unwrap_or_default();
            prop_assert_eq!(spec.scale_target_ref.name, "x-blue");
            prop_assert_eq!(spec.scale_target_ref.kind, "Deployment");
            prop_assert_eq!((spec.min_replicas, spec.max_replicas), (Some(min), min + extra));
            // No metric given: the field stays unset, so Kubernetes' default applies.
            prop_assert_eq!(spec.metrics.is_some(), cpu.is_some());
        }
    }
}
