//! `SagaOrchestrator` (`sagaorchestrators.payments.io/v1`): the service that executes payment
//! sagas (a sequence of steps, each undone by its compensation if a later one fails), its
//! persistence, and its saga definitions as configuration — versioned, so a running saga
//! never has its definition changed under it.

use operator_core::validation::DNS_LABEL_PATTERN;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;

use operator_core::duration::GoDuration;

/// A saga orchestrator and the sagas it runs.
#[operator_core::custom_resource(
    api = "payments.io/v1",
    kind = "SagaOrchestrator",
    shortname = "so",
    doc = "A saga orchestrator: the service that runs distributed payment transactions as sagas, with its versioned saga definitions and its dependencies.",
    printcolumn(name = "Sagas", type_ = "integer", json_path = ".status.sagas"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas")
)]
pub struct SagaOrchestratorSpec {
    /// The orchestrator image.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Its version, as a label on the pods (`app.kubernetes.io/version`).
    #[schemars(length(min = 1, max = 63))]
    pub version: String,
    #[serde(default = "operator_core::defaults::int::<2>")]
    #[schemars(range(min = 1, max = 50))]
    pub replicas: i32,
    /// Resources of the orchestrator container; the operator's `defaultResources` when not set.
    pub resources: Option<ResourceRequirements>,
    pub autoscaling: Option<Autoscaling>,
    #[serde(default)]
    pub monitoring: Monitoring,
    /// Where saga instances are kept (seed 000's CloudNativePG cluster, or Redis).
    pub persistence: Persistence,
    /// The saga definitions.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub sagas: Vec<SagaDefinition>,
    /// Versions of a saga kept besides its current one, while nothing runs on them.
    #[serde(default = "operator_core::defaults::int::<3>")]
    #[schemars(range(min = 1, max = 20))]
    pub definition_history_limit: i32,
    /// How long deletion waits for running sagas to finish or compensate (Go duration).
    #[serde(default = "operator_core::defaults::minutes::<DRAIN_TIMEOUT_MINUTES>")]
    pub drain_timeout: GoDuration,
}

/// `drainTimeout` when the spec leaves it out: five minutes.
pub const DRAIN_TIMEOUT_MINUTES: u32 = 5;

#[operator_core::schema]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed maxReplicas"))]
pub struct Autoscaling {
    #[schemars(range(min = 1, max = 50))]
    pub min_replicas: i32,
    #[schemars(range(min = 1, max = 50))]
    pub max_replicas: i32,
    /// Average CPU utilisation, in percent of requests, to aim for.
    #[serde(default = "operator_core::defaults::int::<70>", rename = "targetCPU")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu: i32,
}

#[operator_core::schema(Default)]
pub struct Monitoring {
    #[serde(default)]
    pub prometheus: Prometheus,
}

/// Prometheus scraping of the orchestrator.
#[operator_core::schema]
pub struct Prometheus {
    #[serde(default = "operator_core::defaults::yes")]
    pub enabled: bool,
    /// The metrics port (8080 serves the orchestrator's API).
    #[serde(default = "operator_core::defaults::int::<9090>")]
    #[schemars(range(min = 1024, max = 65535))]
    #[x_kube(validation = Rule::new("self != 8080").message("port 8080 serves the orchestrator's API; choose another metrics port"))]
    pub port: i32,
    #[serde(default = "default_metrics_path")]
    #[schemars(regex(pattern = r"^/\S*$"))]
    pub path: String,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

operator_core::default_from_fields!(Prometheus);

#[operator_core::schema(Copy, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PersistenceType {
    Postgresql,
    Redis,
}

/// Where saga instances are kept.
#[operator_core::schema]
pub struct Persistence {
    /// Fixed once created: running sagas are kept in this store, and another would not
    /// know them (enforced by the API server itself).
    #[serde(rename = "type")]
    #[x_kube(validation = Rule::new("self == oldSelf")
        .reason(Reason::FieldValueForbidden)
        .message(Message::Expression("'cannot change from %s to %s: running sagas are kept in the %s store and a new store would not know them; create a new SagaOrchestrator on the new store, then delete this one (its deletion waits for running sagas)'.format([oldSelf, self, oldSelf])".into())))]
    pub type_: PersistenceType,
    /// The CloudNativePG `Cluster` (postgresql) or the Redis database's Service (redis).
    #[schemars(length(min = 1, max = 63))]
    pub cluster_name: String,
    /// The Secret with the credentials (`username`, `password`), referenced, never copied.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// One saga: steps run in order; when one fails, the steps before it are compensated in
/// reverse order — up to the pivot, after which the saga is retried forward instead.
#[operator_core::schema]
pub struct SagaDefinition {
    /// Unique within the orchestrator; a DNS label.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub name: String,
    /// The longest one instance may run (Go duration).
    pub timeout: GoDuration,
    #[schemars(length(min = 1, max = 50))]
    pub steps: Vec<SagaStep>,
    /// The step after which the saga can no longer be compensated and is retried forward;
    /// every step before it needs a compensation. Without one, every step needs one.
    pub pivot: Option<String>,
}

#[operator_core::schema]
pub struct SagaStep {
    /// Unique within the saga; a DNS label.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub name: String,
    /// The PaymentService in this namespace the step calls.
    #[schemars(length(min = 1, max = 63))]
    pub service: String,
    pub action: HttpCall,
    /// What undoes the action.
    pub compensation: Option<HttpCall>,
    /// The longest one attempt may take (Go duration); at most the saga's timeout.
    pub timeout: GoDuration,
    #[serde(default)]
    pub retry: StepRetry,
}

/// An HTTP call on the step's service.
#[operator_core::schema]
pub struct HttpCall {
    pub method: HttpMethod,
    /// Path on the service; `{sagaId}` is replaced by the instance's id.
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^/\S*$"))]
    pub path: String,
}

#[operator_core::schema(Copy, Eq)]
pub enum HttpMethod {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "PATCH")]
    Patch,
    #[serde(rename = "DELETE")]
    Delete,
}

/// Retries of a failed attempt, with exponential backoff from `backoff`.
#[operator_core::schema]
pub struct StepRetry {
    #[serde(default = "operator_core::defaults::int::<3>")]
    #[schemars(range(min = 1, max = 20))]
    pub max_attempts: i32,
    #[serde(default = "operator_core::defaults::seconds::<1>")]
    pub backoff: GoDuration,
}

operator_core::default_from_fields!(StepRetry);

#[operator_core::schema(Copy, Eq)]
pub enum Phase {
    /// No orchestrator pod is ready yet.
    Pending,
    /// Pods run the definitions.
    Running,
    /// Deletion waits for running sagas to finish or compensate.
    Draining,
    /// The spec cannot be realised; see the Ready condition.
    Failed,
}

/// One version of one saga the orchestrator holds.
#[operator_core::schema]
pub struct DefinitionVersion {
    pub saga: String,
    pub version: String,
    /// The spec's definition of the saga now; older ones are kept for what runs on them.
    pub current: bool,
    /// Instances still running on it, as the orchestrator reports.
    #[serde(default)]
    pub in_flight: i64,
}

/// Observed state, written by the operator.
#[operator_core::resource_status(phase = Phase, conditions = "Ready, DefinitionsValid, DependenciesReady.")]
pub struct SagaOrchestratorStatus {
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// Sagas in force.
    #[serde(default)]
    pub sagas: i32,
    /// Saga → the version new instances start on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub active_definitions: BTreeMap<String, String>,
    /// Every version held, current and older.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub definition_versions: Vec<DefinitionVersion>,
    /// Older versions kept only because instances still run on them (`saga/version`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub draining_versions: Vec<String>,
}

impl SagaOrchestratorSpec {
    /// The PaymentServices the steps call, each once.
    pub fn services(&self) -> std::collections::BTreeSet<&str> {
        self.sagas
            .iter()
            .flat_map(|s| s.steps.iter().map(|st| st.service.as_str()))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use kube::CustomResourceExt;

    /// The sample `payment-saga`, as stored.
    pub fn sample() -> SagaOrchestrator {
        operator_harness::stored("payment-saga").expect("the sample parses")
    }

    #[test]
    fn the_sample_parses_with_its_four_steps_and_pivot() {
        let spec = sample().spec;
        assert_eq!(spec.sagas.len(), 1);
        let saga = &spec.sagas[0];
        let steps: Vec<&str> = saga.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            steps,
            [
                "reserve-funds",
                "screen-fraud",
                "post-to-ledger",
                "submit-to-clearing"
            ]
        );
        assert_eq!(saga.pivot.as_deref(), Some("submit-to-clearing"));
        assert_eq!(
            spec.services().into_iter().collect::<Vec<_>>(),
            [
                "fraud-screening",
                "ledger-service",
                "payment-initiation-service"
            ]
        );
        assert_eq!(spec.definition_history_limit, 3);
    }

    #[test]
    fn the_crd_has_the_issues_columns_defaults_and_short_name() {
        let crd = serde_json::to_value(SagaOrchestrator::crd()).unwrap_or_default();
        assert_eq!(crd["spec"]["names"]["shortNames"][0], "so");
        let version = &crd["spec"]["versions"][0];
        let columns = operator_harness::printer_columns(&crd);
        assert_eq!(columns, ["Sagas", "Phase", "Ready", "Age"]);
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(spec["definitionHistoryLimit"]["default"], 3);
        let types: Vec<&str> = spec["persistence"]["properties"]["type"]["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(types, ["postgresql", "redis"]);
    }
}
