//! The admission webhooks on a real API server: each operator serves its webhooks as its
//! own process (certificate generated for the test), deploy/admission's configurations point
//! the API server at it, and bad input is refused at the door with the webhook's message.
//! Skipped without `E2E_CLUSTER=1`.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::admission::{
    WebhookCertificate, free_address, install, invalid_twin, restore_conversion, route_conversion,
};
use e2e::operator::{Operator, Webhooks};
use e2e::scenario::lease_holder;
use e2e::{TestNamespace, until};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use operator_core::OperatorDescriptor;
use payment_service::crd::conversion::{V2, convert};
use serde_json::{Value, json};

/// Each operator, its sample and the field its invalid twin gets wrong.
pub(crate) const TWINS: [(&OperatorDescriptor, &str, &str); 5] = [
    (
        &payment_service::OPERATOR,
        "payment-initiation-service",
        "spec.backup.schedule",
    ),
    (
        &trading_algorithm::OPERATOR,
        "sample-momentum-algo",
        "spec.tradingStrategy.parameters.lookback_period",
    ),
    (
        &batch_processor::OPERATOR,
        "daily-payment-batch",
        "spec.monitoring.alertEmail",
    ),
    (
        &clearing_adapter::OPERATOR,
        "card-clearing",
        "spec.config.bankingPartners[1].headers.X-Api-Key",
    ),
    (
        &saga_orchestrator::OPERATOR,
        "payment-saga",
        "spec.sagas[0].steps[2].compensation",
    ),
];

fn api(ns: &TestNamespace, object: &Value) -> Api<DynamicObject> {
    let (group, version) = object["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
        .unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::namespaced_with(ns.client.clone(), &ns.name, &resource)
}

/// The sample made valid again: the twin with the one change undone, read from the sample.
pub(crate) fn valid(name: &str, namespace: &str, kind: &str) -> Result<Value> {
    let path = e2e::manifests::deploy_dir()
        .join("samples")
        .join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path)?;
    let Some(mut object) = operator_core::manifests::first_of_kind(&text, kind)? else {
        anyhow::bail!("{} holds no {kind}", path.display())
    };
    object["metadata"]["namespace"] = json!(namespace);
    Ok(object)
}

/// A server-side dry run of creating `object`: admission runs in full, nothing is stored.
pub(crate) async fn dry_run(
    ns: &TestNamespace,
    object: &Value,
) -> Result<DynamicObject, kube::Error> {
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let object: DynamicObject =
        serde_json::from_value(object.clone()).map_err(kube::Error::SerdeError)?;
    api(
        ns,
        &serde_json::to_value(&object).map_err(kube::Error::SerdeError)?,
    )
    .create(&params, &object)
    .await
}

/// Waits until the API server reaches the webhook (its process is up and listening).
pub(crate) async fn reachable(ns: &TestNamespace, object: &Value) -> Result<()> {
    until(
        "the webhook answers the API server",
        Duration::from_secs(60),
        || async {
            Ok(match dry_run(ns, object).await {
                Err(kube::Error::Api(e))
                    if e.message.contains("failed calling webhook")
                        || e.message.contains("conversion webhook") =>
                {
                    None
                }
                _ => Some(()),
            })
        },
    )
    .await
}

#[tokio::test]
async fn each_samples_invalid_twin_is_refused_by_its_webhook_through_the_api_server() -> Result<()>
{
    let Some(ns) = e2e::cluster("admission-twins").await? else {
        return Ok(());
    };
    let certificate = WebhookCertificate::new(&ns.name)?;
    let mut processes = Vec::new();
    let mut webhooks = Vec::new();
    let mut conversion = None;
    for (descriptor, sample, field) in TWINS {
        let operator = Operator::of(descriptor);
        ns.grant(&operator).await?;
        let address = free_address()?;
        processes.push(
            ns.start_operator_with(
                &operator,
                "a",
                false,
                Webhooks::Files(address, &certificate.dir),
            )
            .await?,
        );
        // The samples are written in v1 (the seed's shape): the API server converts them to
        // the stored v2 through the payment-service operator's conversion webhook.
        if descriptor.resources.iter().any(|r| r.convert.is_some()) {
            conversion = Some(
                route_conversion(&ns.client, PAYMENT_SERVICES, address, Some(&certificate)).await?,
            );
        }
        webhooks.push(
            install(
                &ns.client,
                descriptor.package(),
                &ns.name,
                address,
                &certificate,
            )
            .await?,
        );
        let kind = descriptor.admission[0].resource.kind();
        let good = valid(sample, &ns.name, &kind)?;
        reachable(&ns, &good).await?;
        dry_run(&ns, &good)
            .await
            .with_context(|| format!("{sample} is admitted"))?;

        let twin = invalid_twin(sample, &ns.name)?;
        let refused = dry_run(&ns, &twin).await;
        let Err(kube::Error::Api(status)) = refused else {
            anyhow::bail!("the invalid twin of {sample} was admitted: {refused:?}");
        };
        let hook = format!(
            "admission webhook \"validate.{}.{}\" denied the request",
            kind.to_lowercase(),
            descriptor.admission[0].resource.group()
        );
        assert!(
            status.message.contains(&hook),
            "{sample}: {}",
            status.message
        );
        assert!(
            status.message.contains(field),
            "{sample}: names {field}: {}",
            status.message
        );
        assert!(
            !status
                .message
                .contains("inline-value-that-must-not-be-here"),
            "no credential is echoed"
        );
    }

    // As a user meets it: kubectl apply of a twin fails, naming the field as a schema error
    // would (the webhook's Status carries the causes, which kubectl prints).
    let twin = invalid_twin("payment-initiation-service", &ns.name)?;
    let mut kubectl = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(stdin) = kubectl.stdin.as_mut() {
        use std::io::Write;
        stdin.write_all(serde_json::to_string(&twin)?.as_bytes())?;
    }
    let output = kubectl.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "kubectl apply of the twin fails");
    assert!(
        stderr.contains("PaymentService \"payment-initiation-service\" is invalid: spec.backup.schedule: field 1 (minute) \"61\" is invalid"),
        "{stderr}"
    );

    // The mutating webhook: what the operator would assume when a field is left out is
    // written into the object the API server stores.
    let mut bare = valid("sample-momentum-algo", &ns.name, "TradingAlgorithm")?;
    bare["metadata"]["name"] = json!("defaults-from-the-webhook");
    if let Some(scaling) = bare["spec"]["scalingPolicy"].as_object_mut() {
        scaling.remove("targetCPUUtilization");
        scaling.remove("scaleUpPolicy");
    }
    let stored = serde_json::to_value(dry_run(&ns, &bare).await?)?;
    assert_eq!(
        stored["spec"]["scalingPolicy"]["targetCPUUtilization"], 80,
        "{stored}"
    );
    assert_eq!(stored["spec"]["scalingPolicy"]["scaleUpPolicy"], "moderate");

    conversions_through_the_webhook(&ns).await?;

    for webhook in webhooks {
        webhook.remove().await?;
    }
    for process in &processes {
        process.assert_no_rbac_denials()?;
    }
    // The namespace goes while the operators run: they release the finalizers of what they
    // reconciled (the PaymentService above), and the conversion webhook still answers. (Its
    // RoleBindings go with it, so what they log meanwhile is not checked.)
    let admin = ns.client.clone();
    let cleaned = ns.cleanup().await;
    if let Some(before) = conversion {
        restore_conversion(&admin, PAYMENT_SERVICES, before).await?;
    }
    for mut process in processes {
        process.terminate(Duration::from_secs(30)).await?;
    }
    cleaned
}

const PAYMENT_SERVICES: &str = "paymentservices.payments.io";

/// The seed's PaymentService, created in v1, read in both versions: v1 gives back what was
/// written (the canary steps a blue-green strategy ignores included), v2 the union, with
/// what v2 cannot say kept in the conversion annotation; `kubectl get` of either works.
async fn conversions_through_the_webhook(ns: &TestNamespace) -> Result<()> {
    let seed = valid("payment-initiation-service", &ns.name, "PaymentService")?;
    // A v1 value the conversion cannot carry: the API server converts before it validates,
    // so it answers 500 with the conversion webhook's message, which names the field and what
    // it accepts (testkit is held to the same in crates/payment-service/tests/versions.rs).
    let mut bad = seed.clone();
    bad["metadata"]["name"] = json!("bad-enum");
    bad["spec"]["deploymentStrategy"]["type"] = json!("Sideways");
    let refused = api(ns, &bad)
        .create(
            &PostParams::default(),
            &serde_json::from_value(bad.clone())?,
        )
        .await;
    match refused {
        Err(kube::Error::Api(status))
            if status.code == 500
                && status.message.contains("spec.deploymentStrategy")
                && status.message.contains("expected one of") => {}
        other => anyhow::bail!("a v1 strategy the conversion cannot carry: got {other:?}"),
    }
    api(ns, &seed)
        .create(
            &PostParams::default(),
            &serde_json::from_value(seed.clone())?,
        )
        .await
        .context("the v1 sample is stored through the conversion webhook")?;
    let get = |version: &str| {
        let output = Command::new("kubectl")
            .args([
                "get",
                &format!("paymentservices.{version}.payments.io"),
                "-n",
                &ns.name,
                "payment-initiation-service",
                "-o",
                "json",
            ])
            .output();
        output.map(|o| {
            (
                o.status.success(),
                serde_json::from_slice::<Value>(&o.stdout).unwrap_or(Value::Null),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
    };
    let (ok, v1, stderr) = get("v1")?;
    assert!(ok, "kubectl get …v1: {stderr}");
    assert_eq!(v1["apiVersion"], "payments.io/v1");
    assert_eq!(
        v1["spec"]["deploymentStrategy"], seed["spec"]["deploymentStrategy"],
        "v1 reads back what was written"
    );
    let (ok, v2, stderr) = get("v2")?;
    assert!(ok, "kubectl get …v2: {stderr}");
    assert_eq!(v2["apiVersion"], "payments.io/v2");
    assert_eq!(v2["spec"]["deploymentStrategy"], json!({"blueGreen": {}}));
    assert!(
        v2["metadata"]["annotations"]["payments.io/conversion-data"]
            .as_str()
            .is_some_and(|d| d.contains("canarySteps")),
        "{}",
        v2["metadata"]
    );
    Ok(())
}

#[tokio::test]
async fn a_standby_replica_answers_admission() -> Result<()> {
    let Some(ns) = e2e::cluster("admission-standby").await? else {
        return Ok(());
    };
    let operator = Operator::of(&payment_service::OPERATOR);
    ns.grant(&operator).await?;
    let certificate = WebhookCertificate::new(&ns.name)?;
    let (a_address, b_address) = (free_address()?, free_address()?);
    let mut a = ns
        .start_operator_with(
            &operator,
            "a",
            true,
            Webhooks::Files(a_address, &certificate.dir),
        )
        .await?;
    until("a leads", Duration::from_secs(60), || async {
        Ok(lease_holder(&ns.client, &a.home, &a.lease)
            .await?
            .filter(|h| h == "a"))
    })
    .await?;
    let mut b = ns
        .start_operator_with(
            &operator,
            "b",
            true,
            Webhooks::Files(b_address, &certificate.dir),
        )
        .await?;
    // The API server is sent only to b, which stands by.
    let webhooks = install(
        &ns.client,
        "payment-service",
        &ns.name,
        b_address,
        &certificate,
    )
    .await?;
    // In v2: this test runs no conversion webhook.
    let good = convert(
        valid("payment-initiation-service", &ns.name, "PaymentService")?,
        V2,
    )?;
    reachable(&ns, &good).await?;
    let twin = convert(invalid_twin("payment-initiation-service", &ns.name)?, V2)?;
    let refused = dry_run(&ns, &twin).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.message.contains("spec.backup.schedule")),
        "{refused:?}"
    );
    assert_eq!(
        lease_holder(&ns.client, &a.home, &a.lease)
            .await?
            .as_deref(),
        Some("a"),
        "b answered while standing by"
    );
    webhooks.remove().await?;
    b.terminate(Duration::from_secs(30)).await?;
    a.terminate(Duration::from_secs(30)).await?;
    ns.cleanup().await
}
