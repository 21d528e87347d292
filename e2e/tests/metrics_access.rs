//! An operator's `/metrics` with `--metrics-secure` (its default in a pod) on a real API
//! server, as Prometheus scrapes it: over HTTPS, refused without a token (401) or with one
//! the API server does not know (401), refused to a ServiceAccount without `get /metrics`
//! (403), served to one bound to the metrics-reader ClusterRole deploy/ ships (200). The
//! operator reviews tokens under the RBAC deploy/ grants it. Skipped without `E2E_CLUSTER=1`.

use std::time::Duration;

use anyhow::{Context, Result};
use e2e::admission::free_address;
use e2e::operator::{Operator, Webhooks};
use e2e::scrape::scrape;
use e2e::until;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const OPERATOR: Operator = Operator::of(&batch_processor::OPERATOR);

#[tokio::test]
async fn a_secured_scrape_needs_a_token_allowed_to_get_metrics() -> Result<()> {
    let Some(ns) = e2e::cluster("metrics-auth").await? else {
        return Ok(());
    };
    ns.grant(&OPERATOR).await?;
    let address = free_address()?;
    let bind = format!("--metrics-bind-address={address}");
    let args = [bind.as_str(), "--metrics-secure"];
    let operator = ns
        .start_operator_configured(&OPERATOR, "a", false, Webhooks::Off, "", &args)
        .await?;
    let anonymous = until(
        "the metrics endpoint answers",
        Duration::from_secs(30),
        || async { Ok(scrape(address, None).await.ok()) },
    )
    .await?;
    assert_eq!(anonymous.0, 401, "{anonymous:?}");
    assert_eq!(scrape(address, Some("not-a-token")).await?.0, 401);

    let accounts: Api<ServiceAccount> = Api::namespaced(ns.client.clone(), &ns.name);
    for name in ["nobody", "scraper"] {
        let account = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        accounts.create(&PostParams::default(), &account).await?;
    }
    let reader = format!("{}-metrics-reader", batch_processor::OPERATOR.binary_name());
    let binding_name = format!("{}-scraper", ns.name);
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": binding_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": reader},
        "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": ns.name}],
    }))?;
    let bindings: Api<ClusterRoleBinding> = Api::all(ns.client.clone());
    bindings.create(&PostParams::default(), &binding).await?;
    let token = |name: &'static str| {
        let accounts = accounts.clone();
        async move {
            let request = TokenRequest {
                spec: TokenRequestSpec {
                    audiences: Vec::new(),
                    expiration_seconds: Some(600),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            };
            accounts
                .create_token_request(name, &PostParams::default(), &request)
                .await?
                .status
                .map(|s| s.token)
                .context("no token issued")
        }
    };

    let (status, body) = scrape(address, Some(&token("nobody").await?)).await?;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not get /metrics"), "{body}");
    let (status, body) = scrape(address, Some(&token("scraper").await?)).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("# TYPE process_cpu_seconds"), "{body}");

    bindings
        .delete(&binding_name, &DeleteParams::default())
        .await?;
    operator.assert_no_rbac_denials()?;
    ns.cleanup().await
}
