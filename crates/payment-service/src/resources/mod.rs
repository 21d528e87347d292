//! One pure builder per child kind: the `PaymentService`, the rollout plan and the operator's
//! workload defaults in, the desired object out. No client, no clock.

pub mod backup;
pub mod deployment;
pub mod hpa;
pub mod network_policy;
pub mod pdb;
pub mod service;
pub mod service_account;
pub mod service_monitor;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use operator_core::builder::{Labels, WorkloadDefaults, app_selector};

use crate::crd::PaymentService;
use crate::rollout::RolloutPlan;
use operator_core::monitoring::ServiceMonitor;

/// The port that serves payments.
pub const HTTP_PORT: i32 = 8080;
/// The metrics port when `monitoring.prometheus.port` is not set.
pub const DEFAULT_METRICS_PORT: i32 = 8081;
/// Pod label that tells the stable, canary, blue and green pods apart.
pub const TRACK_LABEL: &str = "payments.io/track";
/// Suffix of the backup CronJob, its ServiceAccount, Role and RoleBinding.
pub const BACKUP_SUFFIX: &str = "-backup";

pub fn backup_name(service: &str) -> String {
    format!("{service}{BACKUP_SUFFIX}")
}

/// The PersistentVolumeClaim the exports are written to.
pub fn backup_volume_name(service: &str) -> String {
    format!("{service}-backups")
}

/// Labels on every child (the standard `app.kubernetes.io/*` ones are added when applied):
/// the operator's `defaultLabels`, then the seed's `app`.
pub fn child_labels(ps: &PaymentService, defaults: &WorkloadDefaults) -> BTreeMap<String, String> {
    defaults.labels(selector(ps))
}

/// The label that selects every pod of a service, whatever its track.
pub fn selector(ps: &PaymentService) -> Labels {
    app_selector(&ps.name_any())
}

/// Everything one `PaymentService` should have this pass.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredChildren {
    pub deployments: Vec<Deployment>,
    pub service: Service,
    /// BlueGreen's `previewService`, when the spec names one.
    pub preview_service: Option<Service>,
    pub hpa: Option<HorizontalPodAutoscaler>,
    pub pdb: Option<PodDisruptionBudget>,
    pub service_account: Option<ServiceAccount>,
    pub network_policy: k8s_openapi::api::networking::v1::NetworkPolicy,
    /// Built when Prometheus scraping is on; applied only where its CRD is installed.
    pub service_monitor: Option<ServiceMonitor>,
    pub backup: Option<backup::BackupChildren>,
}

/// What the pods' configuration depends on beyond the spec: the TLS Secret's
/// resourceVersion, so a rotated certificate rolls the pods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct External {
    pub tls_secret_version: Option<String>,
}

/// Builds every child for this pass's rollout plan.
pub fn desired_children(
    ps: &PaymentService,
    plan: &RolloutPlan,
    defaults: &WorkloadDefaults,
    backup_image: &str,
    external: &External,
) -> DesiredChildren {
    let name = ps.name_any();
    DesiredChildren {
        deployments: plan
            .workloads
            .iter()
            .map(|w| deployment::desired_deployment(ps, w, defaults, external))
            .collect(),
        service: service::desired_service(ps, plan, defaults),
        preview_service: service::desired_preview_service(ps, plan, defaults),
        hpa: ps
            .spec
            .autoscaling()
            .map(|a| hpa::desired_hpa(ps, a, &plan.scaled, defaults)),
        pdb: (ps.spec.min_replicas() > 1).then(|| pdb::desired_pdb(ps, defaults)),
        service_account: ps
            .spec
            .service_account(&name)
            .map(|sa| service_account::desired_service_account(ps, &sa, defaults)),
        network_policy: network_policy::desired_network_policy(ps, defaults),
        service_monitor: ps
            .spec
            .prometheus()
            .map(|p| service_monitor::desired_service_monitor(ps, p, defaults)),
        backup: ps
            .spec
            .backup()
            .map(|b| backup::desired_backup(ps, b, defaults, backup_image)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crd::*;
    use crate::rollout::{self, RolloutInput};
    use k8s_openapi::api::autoscaling::v2::{
        ExternalMetricSource, MetricIdentifier, MetricSpec, MetricTarget,
    };
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::jiff::Timestamp;
    use kube::api::ObjectMeta;
    use proptest::prelude::*;

    fn probe(path: &str, delay: i32, period: i32) -> HttpProbe {
        HttpProbe {
            http_get: HttpGet {
                path: path.into(),
                port: 8080,
            },
            initial_delay_seconds: Some(delay),
            period_seconds: Some(period),
        }
    }

    /// Seed 000's `payment-initiation-service`, field by field.
    pub fn spec() -> PaymentServiceSpec {
        let q = |s: &str| Quantity(s.to_string());
        PaymentServiceSpec {
            version: "1.5.0".into(),
            image: "acr.azurecr.io/payment-initiation-service:1.5.0".into(),
            replicas: 3,
            autoscaling: Some(Autoscaling {
                enabled: true,
                min_replicas: Some(3),
                max_replicas: 20,
                target_cpu_utilization_percentage: Some(70),
                target_memory_utilization_percentage: Some(80),
                metrics: vec![MetricSpec {
                    type_: "External".into(),
                    external: Some(ExternalMetricSource {
                        metric: MetricIdentifier {
                            name: "azure_service_bus_queue_length".into(),
                            selector: None,
                        },
                        target: MetricTarget {
                            type_: "AverageValue".into(),
                            average_value: Some(q("100")),
                            ..MetricTarget::default()
                        },
                    }),
                    ..MetricSpec::default()
                }],
            }),
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("memory".to_string(), q("2Gi")),
                    ("cpu".to_string(), q("1")),
                ])),
                limits: Some(BTreeMap::from([
                    ("memory".to_string(), q("4Gi")),
                    ("cpu".to_string(), q("2")),
                ])),
                ..ResourceRequirements::default()
            }),
            health_check: Some(HealthCheck {
                liveness: Some(probe("/actuator/health/liveness", 60, 10)),
                readiness: Some(probe("/actuator/health/readiness", 30, 5)),
            }),
            config: Some(ServiceConfig {
                database: Some(Database {
                    cluster_name: "payment-initiation-db".into(),
                    pool_size: Some(20),
                }),
                messaging: Some(Messaging {
                    service_bus_namespace: "payments-servicebus".into(),
                    queue_name: "payment-processing-queue".into(),
                }),
                redis: Some(Redis {
                    cluster_name: "idempotency-store".into(),
                }),
                features: Some(Features {
                    enable_idempotency_check: true,
                    enable_fraud_detection: true,
                    enable_rate_limiting: true,
                    rate_limit_per_second: Some(1000),
                }),
            }),
            monitoring: Some(Monitoring {
                prometheus: Some(Prometheus {
                    enabled: true,
                    port: 8081,
                    path: "/actuator/prometheus".into(),
                }),
                tracing: Some(Tracing {
                    enabled: true,
                    jaeger_endpoint: Some(
                        "http://jaeger-collector.istio-system:14268/api/traces".into(),
                    ),
                    sampling_rate: Some(0.1),
                }),
            }),
            security: Some(Security {
                tls: Some(Tls {
                    enabled: true,
                    secret_name: Some("payment-gateway-tls".into()),
                }),
                mtls: Some(Mtls { enabled: true }),
                rbac: Some(Rbac {
                    enabled: true,
                    service_account_name: Some("payment-gateway-sa".into()),
                }),
            }),
            deployment_strategy: Some(DeploymentStrategy::of(
                StrategyType::BlueGreen,
                Vec::new(),
                None,
            )),
            backup: Some(Backup {
                enabled: true,
                schedule: "0 2 * * *".into(),
                retention: 30,
                time_zone: None,
                git: None,
            }),
        }
    }

    pub fn service(spec: PaymentServiceSpec) -> PaymentService {
        PaymentService {
            metadata: ObjectMeta {
                name: Some("payment-initiation-service".into()),
                namespace: Some("payments".into()),
                uid: Some("uid-1".into()),
                generation: Some(1),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }

    /// The plan for a service with nothing deployed yet.
    pub fn first_plan(ps: &PaymentService) -> RolloutPlan {
        let deployments = BTreeMap::new();
        rollout::plan(&RolloutInput::of(ps, &deployments, Timestamp::UNIX_EPOCH))
    }

    #[test]
    fn the_seed_example_has_every_child_the_issue_lists() {
        let ps = service(spec());
        let children = desired_children(
            &ps,
            &first_plan(&ps),
            &WorkloadDefaults::default(),
            crate::RELEASE_IMAGE,
            &External::default(),
        );
        assert_eq!(children.deployments.len(), 1);
        assert!(children.hpa.is_some());
        assert!(children.pdb.is_some(), "minReplicas 3 > 1");
        assert_eq!(
            children
                .service_account
                .and_then(|sa| sa.metadata.name)
                .as_deref(),
            Some("payment-gateway-sa")
        );
        assert!(children.service_monitor.is_some());
        assert!(children.backup.is_some());
    }

    #[test]
    fn optional_children_go_when_their_feature_is_off() {
        let mut s = spec();
        s.autoscaling = None;
        s.replicas = 1;
        s.monitoring = None;
        s.security = None;
        s.backup = None;
        let ps = service(s);
        let children = desired_children(
            &ps,
            &first_plan(&ps),
            &WorkloadDefaults::default(),
            crate::RELEASE_IMAGE,
            &External::default(),
        );
        assert!(children.hpa.is_none());
        assert!(children.pdb.is_none(), "one replica cannot keep a budget");
        assert!(children.service_account.is_none());
        assert!(children.service_monitor.is_none());
        assert!(children.backup.is_none());
    }

    fn arb_spec() -> impl Strategy<Value = PaymentServiceSpec> {
        (
            0..50i32,
            proptest::option::of((any::<bool>(), 1..20i32, 0..30i32)),
            proptest::option::of(1..100i32),
            proptest::collection::vec(1..100i32, 0..5),
            0..3usize,
            any::<bool>(),
            "[a-z0-9]{1,10}",
            proptest::option::of(0.0..=1.0f64),
        )
            .prop_map(
                |(replicas, autoscaling, pool, mut weights, strategy, tls, version, rate)| {
                    let mut s = spec();
                    s.replicas = replicas;
                    s.version = version;
                    s.autoscaling = autoscaling.map(|(enabled, min, extra)| Autoscaling {
                        enabled,
                        min_replicas: Some(min),
                        max_replicas: min + extra,
                        ..Autoscaling::default()
                    });
                    if let Some(db) = s.config.as_mut().and_then(|c| c.database.as_mut()) {
                        db.pool_size = pool;
                    }
                    weights.sort_unstable();
                    weights.dedup();
                    s.deployment_strategy = Some(DeploymentStrategy::of(
                        [
                            StrategyType::RollingUpdate,
                            StrategyType::BlueGreen,
                            StrategyType::Canary,
                        ][strategy],
                        weights
                            .into_iter()
                            .map(|w| CanaryStep {
                                set_weight: w,
                                pause: None,
                            })
                            .collect(),
                        Some(30),
                    ));
                    if let Some(t) = s.security.as_mut().and_then(|s| s.tls.as_mut()) {
                        t.enabled = tls;
                    }
                    if let Some(t) = s.monitoring.as_mut().and_then(|m| m.tracing.as_mut()) {
                        t.sampling_rate = rate;
                    }
                    s
                },
            )
    }

    proptest! {
        /// No spec the validation accepts can panic the builders, and every Deployment the
        /// plan asks for selects its own pods and only runs versions the spec or status named.
        #[test]
        fn any_valid_spec_builds(s in arb_spec()) {
            prop_assume!(operator_core::validation::SpecRules::errors(&s, "svc").is_empty());
            let ps = service(s);
            let plan = first_plan(&ps);
            let children = desired_children(&ps, &plan, &WorkloadDefaults::default(), crate::RELEASE_IMAGE, &External::default());
            for d in &children.deployments {
                let spec = d.spec.clone().unwrap_or_default();
                let selector = spec.selector.match_labels.unwrap_or_default();
                let pod_labels = spec.template.metadata.and_then(|m| m.labels).unwrap_or_default();
                for (k, v) in &selector {
                    prop_assert_eq!(pod_labels.get(k), Some(v));
                }
            }
            let json = serde_json::to_string(&children.service).unwrap_or_default();
            prop_assert!(json.contains("payment-initiation-service"));
        }
    }
}
