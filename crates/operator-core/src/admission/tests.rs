//! The webhook server over real HTTPS, with a certificate generated here: verdicts, causes,
//! warnings, defaulting patches, bad reviews, certificate rotation and readiness.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use testkit::tls::LocalCa;

use super::*;
use crate::metrics::Metrics;
use crate::readiness::Readiness;

#[derive(kube::CustomResource, schemars::JsonSchema, Deserialize, Serialize, Clone, Debug)]
#[kube(group = "example.io", version = "v1", kind = "Widget", namespaced)]
#[serde(rename_all = "camelCase")]
struct WidgetSpec {
    #[serde(default = "three")]
    size: i32,
    #[serde(default)]
    colour: Option<String>,
}

fn three() -> i32 {
    3
}

const WIDGETS: &[Admitted] = &[Admitted {
    resource: CrdKind::of::<Widget>(),
    subresources: &["scale"],
    validate: |review, _client| {
        Box::pin(async move {
            let spec: WidgetSpec = match review.spec() {
                Ok(spec) => spec,
                Err(verdict) => return verdict,
            };
            let mut errors = Vec::new();
            if spec.size > 10 {
                errors.push(FieldError::new(
                    "spec.size",
                    format!("must be at most 10, got {}", spec.size),
                ));
            }
            if spec.colour.as_deref() == Some("") {
                errors.push(FieldError::new("spec.colour", "must not be empty"));
            }
            let mut warnings = Vec::new();
            if spec.size > 5 {
                warnings.push("spec.size above 5 is slow".to_string());
            }
            Verdict::from_errors(errors, warnings)
        })
    },
    default: Some(serde_defaults::<WidgetSpec>),
}];

fn review(operation: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0f2e",
            "kind": {"group": "example.io", "version": "v1", "kind": "Widget"},
            "resource": {"group": "example.io", "version": "v1", "resource": "widgets"},
            "name": "w", "namespace": "team",
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "example.io/v1", "kind": "Widget",
                "metadata": {"name": "w", "namespace": "team"}, "spec": spec},
            "oldObject": null,
            "dryRun": false,
        }
    })
}

struct Served {
    ca: LocalCa,
    dir: PathBuf,
    address: std::net::SocketAddr,
    readiness: Readiness,
    metrics: Metrics,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Served {
    async fn post(&self, path: &str, body: Vec<u8>) -> anyhow::Result<(u16, Value)> {
        let url = format!("https://127.0.0.1:{}{path}", self.address.port());
        let (status, body) = testkit::webhook::call(
            &url,
            self.ca.pem().as_bytes(),
            body,
            Duration::from_secs(10),
        )
        .await?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    async fn review(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let (status, answer) = self.post(path, serde_json::to_vec(body)?).await?;
        assert_eq!(status, 200, "{answer}");
        Ok(answer["response"].clone())
    }

    /// The value `/metrics` shows for `series` (name and labels as exported), 0 if absent.
    fn sample(&self, series: &str) -> f64 {
        self.metrics
            .encode()
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

fn write_certificate(ca: &LocalCa, dir: &std::path::Path) -> anyhow::Result<()> {
    let issued = ca.server_certificate(&["widgets-webhook.example.svc"])?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("tls.crt"), issued.cert_pem)?;
    std::fs::write(dir.join("tls.key"), issued.key_pem)?;
    Ok(())
}

fn scratch_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "operator-core-webhook-{name}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ))
}

async fn serve(name: &str, with_certificate: bool) -> anyhow::Result<Served> {
    let ca = LocalCa::new("webhook test CA")?;
    let dir = scratch_dir(name);
    std::fs::create_dir_all(&dir)?;
    if with_certificate {
        write_certificate(&ca, &dir)?;
    }
    let client = testkit::ApiServer::new().client();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let readiness = Readiness::default();
    readiness.set_connected();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let metrics = Metrics::new();
    let server = WebhookServer::new(WIDGETS, client, ServingCertificate::in_dir(&dir))
        .polling_every(Duration::from_millis(100))
        .recording(WebhookMetrics::register(&metrics));
    tokio::spawn(server.serve(listener, readiness.clone(), stop_rx));
    Ok(Served {
        ca,
        dir,
        address,
        readiness,
        metrics,
        _stop: stop,
    })
}

#[tokio::test]
async fn a_valid_object_is_allowed_an_invalid_one_denied_naming_every_field() -> anyhow::Result<()>
{
    let served = serve("verdicts", true).await?;
    let path = WIDGETS[0].validate_path();
    assert_eq!(path, "/validate-example-io-v1-widget");

    let allowed = served
        .review(&path, &review("CREATE", json!({"size": 4})))
        .await?;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    assert_eq!(allowed["uid"], "0f2e", "the request's uid is echoed");

    let warned = served
        .review(&path, &review("UPDATE", json!({"size": 7})))
        .await?;
    assert_eq!(warned["allowed"], true);
    assert_eq!(warned["warnings"], json!(["spec.size above 5 is slow"]));

    let denied = served
        .review(&path, &review("CREATE", json!({"size": 12, "colour": ""})))
        .await?;
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["status"]["code"], 422);
    assert_eq!(denied["status"]["reason"], "Invalid");
    let message = denied["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.size: must be at most 10, got 12")
            && message.contains("spec.colour: must not be empty"),
        "{message}"
    );
    let fields: Vec<&str> = denied["status"]["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert_eq!(fields, ["spec.size", "spec.colour"]);

    let mistyped = served
        .review(&path, &review("CREATE", json!({"size": "big"})))
        .await?;
    assert_eq!(mistyped["allowed"], false);
    assert_eq!(
        mistyped["status"]["details"]["causes"][0]["field"], "spec.size",
        "a value of the wrong type is refused naming its field: {mistyped}"
    );

    let deleted = served
        .review(&path, &review("DELETE", json!({"size": 99})))
        .await?;
    assert_eq!(deleted["allowed"], true, "deletes are never refused");

    let reviews = |result: &str| {
        served.sample(&format!(
            "operator_admission_reviews_total{{webhook=\"{path}\",result=\"{result}\"}}"
        ))
    };
    assert_eq!(
        (reviews("allowed"), reviews("denied"), reviews("error")),
        (3.0, 2.0, 0.0),
        "a broken rule is a denial, not an error"
    );
    assert_eq!(
        served.sample(&format!(
            "controller_runtime_webhook_requests_total{{webhook=\"{path}\",code=\"200\"}}"
        )),
        5.0
    );
    assert_eq!(
        served.sample(&format!(
            "controller_runtime_webhook_latency_seconds_count{{webhook=\"{path}\"}}"
        )),
        5.0
    );
    Ok(())
}

#[tokio::test]
async fn defaulting_patches_add_only_what_is_missing() -> anyhow::Result<()> {
    let served = serve("defaults", true).await?;
    let path = WIDGETS[0].mutate_path();
    let object = review("CREATE", json!({"colour": "red"}));
    let answer = served.review(&path, &object).await?;
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["patchType"], "JSONPatch");
    let bytes: k8s_openapi::ByteString = serde_json::from_value(answer["patch"].clone())?;
    let patch: json_patch::Patch = serde_json::from_slice(&bytes.0)?;
    let mut patched = object["request"]["object"].clone();
    json_patch::patch(&mut patched, &patch)?;
    assert_eq!(patched["spec"], json!({"colour": "red", "size": 3}));

    let complete = served
        .review(&path, &review("CREATE", json!({"size": 9})))
        .await?;
    assert_eq!(complete["allowed"], true);
    assert!(complete.get("patch").is_none(), "nothing to add: no patch");
    let reviews = |result: &str| {
        served.sample(&format!(
            "operator_admission_reviews_total{{webhook=\"{path}\",result=\"{result}\"}}"
        ))
    };
    assert_eq!((reviews("patched"), reviews("allowed")), (1.0, 1.0));
    Ok(())
}

#[tokio::test]
async fn malformed_wrong_kind_and_oversized_reviews_are_denied_cleanly() -> anyhow::Result<()> {
    let served = serve("bad-reviews", true).await?;
    let path = WIDGETS[0].validate_path();

    let (status, garbage) = served.post(&path, b"{not json".to_vec()).await?;
    assert_eq!(status, 200);
    assert_eq!(garbage["response"]["allowed"], false);
    assert!(
        garbage["response"]["status"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("cannot read the AdmissionReview")),
        "{garbage}"
    );

    let mut old_version = review("CREATE", json!({}));
    old_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let refused = served.review(&path, &old_version).await?;
    assert_eq!(refused["allowed"], false);

    let mut pods = review("CREATE", json!({}));
    pods["request"]["resource"] = json!({"group": "", "version": "v1", "resource": "pods"});
    let wrong_kind = served.review(&path, &pods).await?;
    assert_eq!(wrong_kind["allowed"], false);
    assert!(
        wrong_kind["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not /v1 pods")),
        "{wrong_kind}"
    );

    let mut status_write = review("UPDATE", json!({}));
    status_write["request"]["subResource"] = json!("status");
    let unlisted = served.review(&path, &status_write).await?;
    assert_eq!(
        unlisted["allowed"], false,
        "a subresource not listed: {unlisted}"
    );

    let huge = vec![b' '; MAX_REVIEW_BYTES + 1];
    let (status, _) = served.post(&path, huge).await?;
    assert_eq!(
        status, 413,
        "an oversized body is refused before it is read"
    );

    let (status, _) = served.post("/validate-nothing", b"{}".to_vec()).await?;
    assert_eq!(status, 404);

    let still = served
        .review(&path, &review("CREATE", json!({"size": 1})))
        .await?;
    assert_eq!(still["allowed"], true, "the server still answers");

    // What the API server sent wrong is an error on the metrics, apart from bad objects.
    let series =
        |name: &str, label: &str| served.sample(&format!("{name}{{webhook=\"{path}\",{label}}}"));
    let reviews = "operator_admission_reviews_total";
    assert_eq!(series(reviews, "result=\"error\""), 4.0);
    assert_eq!(series(reviews, "result=\"allowed\""), 1.0);
    let requests = "controller_runtime_webhook_requests_total";
    assert_eq!(series(requests, "code=\"413\""), 1.0, "the oversized body");
    assert_eq!(series(requests, "code=\"200\""), 5.0);
    assert!(
        !served.metrics.encode().contains("/validate-nothing"),
        "a path no webhook serves gets no series"
    );
    Ok(())
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart() -> anyhow::Result<()> {
    let served = serve("rotation", true).await?;
    let path = WIDGETS[0].validate_path();
    served.review(&path, &review("CREATE", json!({}))).await?;

    let new_ca = LocalCa::new("rotated CA")?;
    write_certificate(&new_ca, &served.dir)?;
    let url = format!("https://127.0.0.1:{}{path}", served.address.port());
    let body = serde_json::to_vec(&review("CREATE", json!({})))?;
    let mut rotated = false;
    for _ in 0..50 {
        if testkit::webhook::call(
            &url,
            new_ca.pem().as_bytes(),
            body.clone(),
            Duration::from_secs(5),
        )
        .await
        .is_ok()
        {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rotated, "the new certificate is served");
    assert!(
        served.post(&path, body).await.is_err(),
        "the old CA no longer verifies the server"
    );
    assert!(served.readiness.is_ready());
    Ok(())
}

#[tokio::test]
async fn a_missing_or_bad_certificate_fails_readiness_with_the_reason() -> anyhow::Result<()> {
    let served = serve("missing", false).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let why = served.readiness.not_ready_because().unwrap_or_default();
    assert!(
        why.starts_with("webhook certificate: cannot read") && why.contains("tls.crt"),
        "{why}"
    );

    std::fs::write(served.dir.join("tls.crt"), "not a certificate")?;
    std::fs::write(served.dir.join("tls.key"), "not a key")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let why = served.readiness.not_ready_because().unwrap_or_default();
    assert!(why.contains("holds no PEM certificate"), "{why}");

    write_certificate(&served.ca, &served.dir)?;
    for _ in 0..50 {
        if served.readiness.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served.readiness.is_ready(),
        "ready once a good certificate is mounted"
    );
    let answer = served
        .review(&WIDGETS[0].validate_path(), &review("CREATE", json!({})))
        .await?;
    assert_eq!(answer["allowed"], true);
    Ok(())
}
