//! The adapter's ConfigMap `<name>-config`, in the format docs/clearing-adapter.md documents:
//!
//! - `adapter.json`: everything but the weights — processor type, timeouts, retry, rate limit,
//!   circuit breaker, and per partner its endpoint, headers, health path and the files its
//!   TLS material and credential are mounted at. Its hash (with the referenced Secrets'
//!   versions) is the pods' config-hash annotation: a change rolls the pods.
//! - `weights.json`: partner → effective weight. The operator rewrites it when it drains or
//!   restores a partner; it is outside the hash, so the pods are not rolled: the adapter
//!   re-reads it when the mounted file changes (the reload contract).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use operator_core::apply::short_digest;
use operator_core::builder::WorkloadDefaults;
use serde_json::{Value, json};

use super::deployment::SECRETS_MOUNT;
use super::{child_labels, config_name};
use crate::crd::{AuthType, BankingPartner, ClearingAdapter, SecretKeyRef};

/// Where a Secret's key is mounted in the adapter's pods.
pub fn secret_file(secret: &str, key: &str) -> String {
    format!("{SECRETS_MOUNT}/{secret}/{key}")
}

fn key_file(r: &SecretKeyRef) -> String {
    secret_file(&r.name, &r.key)
}

fn partner(p: &BankingPartner) -> Value {
    let mut out = json!({
        "name": p.name,
        "endpoint": p.endpoint,
        "headers": p.headers,
        "healthCheckPath": p.health_check_path,
    });
    if let Some(tls) = &p.tls {
        let mut t = json!({});
        if let Some(ca) = &tls.ca_secret_ref {
            t["caFile"] = json!(key_file(ca));
        }
        if let Some(cert) = &tls.client_certificate_secret_name {
            t["certFile"] = json!(secret_file(cert, "tls.crt"));
            t["keyFile"] = json!(secret_file(cert, "tls.key"));
        }
        out["tls"] = t;
    }
    if let Some(auth) = &p.auth {
        let header = match auth.type_ {
            AuthType::ApiKey => auth.header.clone().unwrap_or_else(|| "X-API-Key".into()),
            AuthType::Bearer | AuthType::Basic => "Authorization".into(),
        };
        out["auth"] = json!({
            "type": auth.type_,
            "header": header,
            "credentialFile": key_file(&auth.secret_ref),
        });
    }
    out
}

/// `adapter.json`.
pub fn adapter_json(ca: &ClearingAdapter) -> Value {
    let spec = &ca.spec;
    let config = &spec.config;
    let mut out = json!({
        "processorType": spec.processor_type,
        "timeout": config.timeout,
        "circuitBreaker": spec.circuit_breaker,
        "partners": config.banking_partners.iter().map(partner).collect::<Vec<_>>(),
        "weightsFile": "weights.json",
    });
    if let Some(retry) = &config.retry_config {
        out["retry"] = json!(retry);
    }
    if let Some(limit) = &config.rate_limit {
        out["rateLimit"] = json!(limit);
    }
    if let Some(encryption) = &config.encryption {
        out["encryption"] = json!({
            "algorithm": encryption.algorithm,
            "keyFile": key_file(&encryption.key_secret_ref),
        });
    }
    out
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// The pods' config-hash: `adapter.json` and the referenced Secrets' versions.
pub fn config_hash(ca: &ClearingAdapter, secret_versions: &BTreeMap<String, String>) -> String {
    let adapter = pretty(&adapter_json(ca));
    let versions = serde_json::to_string(secret_versions).unwrap_or_default();
    short_digest([adapter.as_bytes(), versions.as_bytes()])
}

pub fn desired_config_map(
    ca: &ClearingAdapter,
    weights: &BTreeMap<String, i32>,
    defaults: &WorkloadDefaults,
) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_name(&ca.name_any())),
            labels: Some(child_labels(ca, defaults)),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("adapter.json".to_string(), pretty(&adapter_json(ca))),
            ("weights.json".to_string(), pretty(&json!(weights))),
        ])),
        ..ConfigMap::default()
    }
}
