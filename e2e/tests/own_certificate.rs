//! The default install's webhooks on a real API server: deploy/<operator> as installed
//! (`dist/install.yaml`), no cert-manager and nothing supplied by hand. Each operator issues
//! its webhook certificate into a Secret of its namespace and writes the CA into the
//! configurations (and, payment-service, the CRD's conversion webhook) that the install put
//! there; then every sample is admitted — seed 000's PaymentService written in v1, converted
//! through the webhook — and each invalid twin is refused at the door.
//!
//! What the test changes from the install, and why: the configurations and the CRD call the
//! operator processes by URL on 127.0.0.1 (the real control plane routes no Service), and the
//! configurations select the test's namespace. The CA bundles are left to the operators.
//! Skipped without `E2E_CLUSTER=1`.

use std::time::Duration;

use anyhow::{Context, Result};
use e2e::admission::{
    RoutedWebhooks, free_address, invalid_twin, restore_conversion, route_conversion,
    route_installed,
};
use e2e::operator::{Operator, OperatorProcess, Webhooks};
use e2e::{TestNamespace, until};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use operator_core::OperatorDescriptor;
use operator_core::admission::WebhookNames;

use crate::admission::{TWINS, dry_run, reachable, valid};

const PAYMENT_SERVICES: &str = "paymentservices.payments.io";

#[tokio::test]
async fn the_installed_webhooks_admit_every_sample_with_the_operators_own_certificates()
-> Result<()> {
    let Some(ns) = e2e::cluster("own-certificates").await? else {
        return Ok(());
    };
    let mut processes = Vec::new();
    let mut routed: Vec<RoutedWebhooks> = Vec::new();
    let mut conversion = None;
    for (descriptor, _, _) in TWINS {
        let operator = Operator::of(descriptor);
        ns.grant(&operator).await?;
        let address = free_address()?;
        routed.push(route_installed(&ns.client, descriptor.package(), &ns.name, address).await?);
        if descriptor.resources.iter().any(|r| r.convert.is_some()) {
            conversion = Some(route_conversion(&ns.client, PAYMENT_SERVICES, address, None).await?);
        }
        processes.push(
            ns.start_operator_with(&operator, "a", false, Webhooks::OwnCertificate(address))
                .await?,
        );
    }

    let checked = every_sample(&ns, &processes).await;
    // Before the namespace goes: its RoleBindings go with it.
    let denials = processes
        .iter()
        .try_for_each(OperatorProcess::assert_no_rbac_denials);

    let admin = ns.client.clone();
    let cleaned = ns.cleanup().await;
    if let Some(before) = conversion {
        restore_conversion(&admin, PAYMENT_SERVICES, before).await?;
    }
    for webhooks in routed {
        webhooks.restore().await?;
    }
    for process in &mut processes {
        process.terminate(Duration::from_secs(30)).await?;
    }
    checked?;
    denials?;
    for process in &processes {
        let log = std::fs::read_to_string(&process.log)?;
        assert!(
            !log.contains("PRIVATE KEY"),
            "{}: a certificate's key is never logged",
            process.log.display()
        );
    }
    cleaned
}

async fn every_sample(ns: &TestNamespace, processes: &[OperatorProcess]) -> Result<()> {
    for ((descriptor, sample, field), process) in TWINS.iter().zip(processes) {
        trusted(ns, descriptor, &process.home).await?;
        let admitted = &descriptor.admission[0].resource;
        let good = valid(sample, &ns.name, &admitted.kind())?;
        reachable(ns, &good).await?;
        dry_run(ns, &good)
            .await
            .with_context(|| format!("{sample} is admitted through the installed webhooks"))?;

        let twin = invalid_twin(sample, &ns.name)?;
        let refused = dry_run(ns, &twin).await;
        let Err(kube::Error::Api(status)) = refused else {
            anyhow::bail!("the invalid twin of {sample} was admitted: {refused:?}");
        };
        let hook = format!(
            "admission webhook \"validate.{}.{}\" denied",
            admitted.kind().to_lowercase(),
            admitted.group()
        );
        assert!(
            status.message.contains(&hook),
            "{sample}: {}",
            status.message
        );
        assert!(
            status.message.contains(field),
            "{sample}: {}",
            status.message
        );
    }
    Ok(())
}

/// Waits until the operator has issued its certificate in `home` and written its CA into its
/// validating configuration and, where it converts, the CRD; checks the Secret is marked as
/// the operator's.
async fn trusted(ns: &TestNamespace, descriptor: &OperatorDescriptor, home: &str) -> Result<()> {
    let names = WebhookNames::of(&descriptor.binary.identity);
    let secrets: Api<Secret> = Api::namespaced(ns.client.clone(), home);
    let what = format!("{} issues its certificate", descriptor.binary_name());
    let ca = until(&what, Duration::from_secs(60), || async {
        Ok(secrets
            .get_opt(&names.secret)
            .await?
            .and_then(|s| s.data)
            .and_then(|d| d.get("ca.crt").cloned()))
    })
    .await?;
    let converts = descriptor.resources.iter().any(|r| r.convert.is_some());
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(ns.client.clone());
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
    let what = format!(
        "{} writes its CA where the API server reads it",
        descriptor.binary_name()
    );
    until(&what, Duration::from_secs(60), || async {
        let config = configs.get(&names.validating).await?;
        let webhooks_trust = config
            .webhooks
            .iter()
            .flatten()
            .all(|w| w.client_config.ca_bundle.as_ref() == Some(&ca));
        let conversion_trusts = !converts
            || crds
                .get(PAYMENT_SERVICES)
                .await?
                .spec
                .conversion
                .and_then(|c| c.webhook)
                .and_then(|w| w.client_config)
                .and_then(|c| c.ca_bundle)
                .as_ref()
                == Some(&ca);
        Ok((webhooks_trust && conversion_trusts).then_some(()))
    })
    .await?;
    let secret = secrets.get(&names.secret).await?;
    assert_eq!(
        secret
            .metadata
            .labels
            .unwrap_or_default()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some(descriptor.binary_name()),
        "the Secret is marked as the operator's"
    );
    Ok(())
}
