//! CRD versions, as the API server serves several of one resource: objects are stored in the
//! storage version, and a request in another served version has its objects converted on the
//! way in and out — by the CRD's conversion webhook (`strategy: Webhook`, a ConversionReview
//! over HTTPS trusting the stanza's `caBundle`), or by a change of `apiVersion` alone
//! (`strategy: None`). What the webhook returns is checked as the API server checks it: as
//! many objects, in the version asked for, with only labels and annotations changed in their
//! metadata.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::webhook::{ServiceRoutes, post_review};

/// How one custom resource's versions convert.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Conversion {
    pub group: String,
    pub kind: String,
    pub storage_version: String,
    /// The webhook's `clientConfig`; `None` for `strategy: None`.
    pub webhook: Option<Value>,
}

impl Conversion {
    /// Read from a CRD object: its storage version and conversion stanza.
    pub fn of(crd: &Value) -> Option<Self> {
        let spec = &crd["spec"];
        let storage_version = spec["versions"]
            .as_array()?
            .iter()
            .find(|v| v["storage"] == true)?["name"]
            .as_str()?
            .to_string();
        let webhook = (spec["conversion"]["strategy"] == "Webhook")
            .then(|| spec["conversion"]["webhook"]["clientConfig"].clone());
        Some(Self {
            group: spec["group"].as_str()?.to_string(),
            kind: spec["names"]["kind"].as_str()?.to_string(),
            storage_version,
            webhook,
        })
    }

    pub fn api_version(&self, version: &str) -> String {
        format!("{}/{version}", self.group)
    }

    /// `objects` in `version`.
    pub async fn convert(
        &self,
        routes: &ServiceRoutes,
        objects: Vec<Value>,
        version: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let desired = self.api_version(version);
        if objects.iter().all(|o| o["apiVersion"] == desired.as_str()) {
            return Ok(objects);
        }
        let Some(client) = &self.webhook else {
            return Ok(objects
                .into_iter()
                .map(|mut o| {
                    o["apiVersion"] = json!(desired);
                    o
                })
                .collect());
        };
        let failed = |why: String| {
            ApiError::internal(format!(
                "conversion webhook for {}, Kind={} failed: {why}",
                self.api_version(&self.storage_version),
                self.kind
            ))
        };
        let review = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "request": {"uid": "testkit-conversion", "desiredAPIVersion": desired, "objects": objects},
        });
        let answer = post_review(client, routes, &review, std::time::Duration::from_secs(30))
            .await
            .map_err(failed)?;
        let response = &answer["response"];
        if response["uid"] != "testkit-conversion" {
            return Err(failed(
                "the response's uid does not match the request's".into(),
            ));
        }
        if response["result"]["status"] != "Success" {
            return Err(failed(
                response["result"]["message"]
                    .as_str()
                    .unwrap_or("the webhook reported a failure")
                    .to_string(),
            ));
        }
        let converted = response["convertedObjects"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if converted.len() != objects.len() {
            return Err(failed(format!(
                "expected {} converted objects, got {}",
                objects.len(),
                converted.len()
            )));
        }
        for (before, after) in objects.iter().zip(&converted) {
            if after["apiVersion"] != desired.as_str() {
                return Err(failed(format!(
                    "invalid converted object: expected apiVersion {desired}, got {}",
                    after["apiVersion"]
                )));
            }
            let fixed = |o: &Value| {
                let mut m = o["metadata"].clone();
                if let Some(map) = m.as_object_mut() {
                    map.remove("labels");
                    map.remove("annotations");
                }
                m
            };
            if fixed(before) != fixed(after) {
                return Err(failed(
                    "invalid metadata in the converted object: only labels and annotations may change".into(),
                ));
            }
        }
        Ok(converted)
    }
}
