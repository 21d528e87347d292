//! `payments.io/v1`, seed 000's shape, still served: a rollout strategy is a `type` beside
//! `canarySteps`, which a `RollingUpdate` or `BlueGreen` strategy carries to no effect.
//! Everything else is as in v2, so the v1 schema is v2's with this strategy in its place.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition, JSONSchemaProps, ServiceReference,
    WebhookClientConfig, WebhookConversion,
};
use kube::CustomResourceExt;

use super::{CanaryStep, MAX_CANARY_STEPS, PaymentService, StrategyType, increasing_weights_rule};

/// How new versions are rolled out, as v1 says it.
#[operator_core::schema(Default)]
#[x_kube(validation = Rule::new("self.type != 'Canary' || (has(self.canarySteps) && size(self.canarySteps) > 0)").message("a Canary strategy needs at least one canary step"))]
pub struct DeploymentStrategy {
    /// RollingUpdate (default), BlueGreen or Canary.
    #[serde(default, rename = "type")]
    pub type_: StrategyType,
    /// Canary steps, in order: each sends `setWeight` percent of the pods to the new version
    /// and holds for `pause`. Weights must increase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_CANARY_STEPS))]
    #[x_kube(validation = Rule::new(increasing_weights_rule()).message("canary step weights must increase"))]
    pub canary_steps: Vec<CanaryStep>,
    /// Seconds a rollout (or a canary step) may take to become available before it counts as
    /// failed and is rolled back. Default 600, as in Kubernetes.
    #[schemars(range(min = 1, max = 86400))]
    pub progress_deadline_seconds: Option<i32>,
}

/// What every request in v1 is told (kubectl prints it as `Warning: …`).
pub const DEPRECATION: &str = "payments.io/v1 PaymentService is deprecated: use payments.io/v2, where deploymentStrategy is one of rollingUpdate, canary and blueGreen";

/// Where the API server sends ConversionReviews: the operator's webhook Service, as
/// deploy/payment-service installs it. The operator writes the CA of its own certificate
/// into the CRD; with deploy/admission/payment-service, cert-manager injects it instead.
pub const WEBHOOK_NAMESPACE: &str = "payments-system";
pub const WEBHOOK_SERVICE: &str = "payment-service-operator-webhook";
pub const WEBHOOK_CERTIFICATE: &str = "payment-service-operator-webhook-cert";

/// The schema of `v1::DeploymentStrategy`, generated as kube generates a CRD's.
fn strategy_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .into_generator();
    let mut schema = serde_json::to_value(generator.into_root_schema_for::<DeploymentStrategy>())
        .unwrap_or_default();
    if let Some(map) = schema.as_object_mut() {
        map.remove("title");
    }
    schema
}

/// The PaymentService CRD: v2 served and stored, v1 served, converted by the operator's
/// webhook (`/convert`).
pub fn crd() -> CustomResourceDefinition {
    let mut crd = PaymentService::crd();
    let Some(v2) = crd.spec.versions.first().cloned() else {
        return crd;
    };
    let mut v1 = v2.clone();
    v1.name = "v1".into();
    v1.storage = false;
    v1.deprecated = Some(true);
    v1.deprecation_warning = Some(DEPRECATION.into());
    if let Some(schema) = v1
        .schema
        .as_mut()
        .and_then(|s| s.open_api_v3_schema.as_mut())
    {
        let mut json = serde_json::to_value(&*schema).unwrap_or_default();
        let property = &mut json["properties"]["spec"]["properties"]["deploymentStrategy"];
        let mut strategy = strategy_schema();
        strategy["description"] = property["description"].clone();
        strategy["nullable"] = property["nullable"].clone();
        *property = strategy;
        if let Ok(converted) = serde_json::from_value::<JSONSchemaProps>(json) {
            *schema = converted;
        }
    }
    crd.spec.versions = vec![v1, v2];
    crd.spec.conversion = Some(CustomResourceConversion {
        strategy: "Webhook".into(),
        webhook: Some(WebhookConversion {
            conversion_review_versions: vec!["v1".into()],
            client_config: Some(WebhookClientConfig {
                service: Some(ServiceReference {
                    namespace: WEBHOOK_NAMESPACE.into(),
                    name: WEBHOOK_SERVICE.into(),
                    path: Some("/convert".into()),
                    port: Some(443),
                }),
                ..WebhookClientConfig::default()
            }),
        }),
    });
    crd.metadata.annotations = Some(
        [(
            "cert-manager.io/inject-ca-from".to_string(),
            format!("{WEBHOOK_NAMESPACE}/{WEBHOOK_CERTIFICATE}"),
        )]
        .into(),
    );
    crd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_differs_from_v2_only_in_the_strategy() {
        let crd = crd();
        let schema = |i: usize| {
            let mut s = serde_json::to_value(&crd.spec.versions[i].schema).unwrap_or_default();
            let strategy =
                s["openAPIV3Schema"]["properties"]["spec"]["properties"]["deploymentStrategy"]
                    .take();
            (s, strategy)
        };
        let ((v1, v1_strategy), (v2, v2_strategy)) = (schema(0), schema(1));
        assert_eq!(v1, v2);
        assert!(
            v1_strategy["properties"]["type"].is_object(),
            "{v1_strategy}"
        );
        assert!(v1_strategy["properties"]["canarySteps"].is_object());
        assert!(
            v2_strategy["properties"]["canary"].is_object(),
            "{v2_strategy}"
        );
        assert_eq!(v1_strategy["nullable"], true);
        assert_eq!(
            (crd.spec.versions[0].storage, crd.spec.versions[1].storage),
            (false, true),
            "v2 is stored"
        );
        assert!(crd.spec.versions.iter().all(|v| v.served));
        assert_eq!(
            crd.spec.versions[0].deprecated,
            Some(true),
            "v1 warns its clients"
        );
    }
}
