//! Steps every operator's scenarios take: load a seed sample into the test's namespace, read a
//! resource's status and conditions, wait for one, measure writes while converged, find the
//! leader.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use crate::TestNamespace;
use crate::apiserver::{delta, request_totals, writes};

/// A custom resource kind of the product, for dynamic access.
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

/// In v2, its stored version: the API server converts a v1 request through the operator's
/// conversion webhook, which only the admission tests run.
pub const PAYMENT_SERVICE: Kind = Kind {
    group: "payments.io",
    version: "v2",
    kind: "PaymentService",
    plural: "paymentservices",
};

pub const TRADING_ALGORITHM: Kind = Kind {
    group: "fintech.io",
    version: "v1",
    kind: "TradingAlgorithm",
    plural: "tradingalgorithms",
};

pub const CLEARING_ADAPTER: Kind = Kind {
    group: "payments.io",
    version: "v1",
    kind: "ClearingAdapter",
    plural: "clearingadapters",
};

pub const SAGA_ORCHESTRATOR: Kind = Kind {
    group: "payments.io",
    version: "v1",
    kind: "SagaOrchestrator",
    plural: "sagaorchestrators",
};

pub const BATCH_PROCESSOR: Kind = Kind {
    group: "payments.io",
    version: "v1",
    kind: "BatchProcessor",
    plural: "batchprocessors",
};

impl TestNamespace {
    /// The API of `kind` in this namespace.
    pub fn api(&self, kind: Kind) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk(kind.group, kind.version, kind.kind);
        Api::namespaced_with(
            self.client.clone(),
            &self.name,
            &ApiResource::from_gvk_with_plural(&gvk, kind.plural),
        )
    }

    /// The seed sample `deploy/samples/<file>.yaml` (its document of `kind`) placed in this
    /// namespace, with `edit` applied to it.
    pub fn sample_json(
        &self,
        kind: Kind,
        file: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Value> {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../deploy/samples/{file}.yaml"));
        let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        let mut sample = operator_core::manifests::first_of_kind(&text, kind.kind)?
            .with_context(|| format!("{} holds no {}", path.display(), kind.kind))?;
        sample["metadata"]["namespace"] = Value::String(self.name.clone());
        edit(&mut sample);
        Ok(sample)
    }

    /// Creates the seed sample `deploy/samples/<file>.yaml` (its document of `kind`) in this
    /// namespace, with `edit` applied to it; returns its name.
    pub async fn create_sample(
        &self,
        kind: Kind,
        file: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Result<String> {
        let sample = self.sample_json(kind, file, edit)?;
        let name = sample["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.api(kind)
            .create(&PostParams::default(), &serde_json::from_value(sample)?)
            .await
            .with_context(|| format!("creating {} {name}", kind.kind))?;
        Ok(name)
    }

    /// The resource as JSON, if it exists.
    pub async fn get_json(&self, kind: Kind, name: &str) -> Result<Option<Value>> {
        Ok(match self.api(kind).get_opt(name).await? {
            Some(obj) => Some(serde_json::to_value(obj)?),
            None => None,
        })
    }

    /// Waits until the resource's status satisfies `check`; returns the status.
    pub async fn status_until(
        &self,
        kind: Kind,
        name: &str,
        what: &str,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let status = self
                .get_json(kind, name)
                .await?
                .map(|o| o["status"].clone())
                .unwrap_or_default();
            if check(&status) {
                return Ok(status);
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "{} {name}: {what} did not happen within {limit:?}; status: {status}",
                    kind.kind
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until this namespace holds no object of any of `kinds` (group, version, kind,
    /// plural): what the garbage collector leaves once an owner is gone.
    pub async fn until_none_left(
        &self,
        kinds: &[(&str, &str, &str, &str)],
        limit: Duration,
    ) -> Result<()> {
        let apis: Vec<Api<DynamicObject>> = kinds
            .iter()
            .map(|(group, version, kind, plural)| {
                let gvk = GroupVersionKind::gvk(group, version, kind);
                Api::namespaced_with(
                    self.client.clone(),
                    &self.name,
                    &ApiResource::from_gvk_with_plural(&gvk, plural),
                )
            })
            .collect();
        crate::until("children garbage-collected", limit, || async {
            let mut left = 0;
            for api in &apis {
                left += api.list(&Default::default()).await?.items.len();
            }
            Ok((left == 0).then_some(()))
        })
        .await
    }

    /// The names of the objects of `api_version`/`plural` in this namespace that `owner_uid`
    /// controls.
    pub async fn children(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        owner_uid: &str,
    ) -> Result<Vec<String>> {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.name,
            &ApiResource::from_gvk_with_plural(&gvk, plural),
        );
        Ok(api
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter(|o| {
                o.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.uid == owner_uid && r.controller == Some(true))
            })
            .filter_map(|o| o.metadata.name)
            .collect())
    }
}

/// The condition of `type_` in a status.
pub fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

/// Whether `type_` is `True` in a status.
pub fn is_true(status: &Value, type_: &str) -> bool {
    condition(status, type_)["status"] == "True"
}

/// The writes the API server answered, to `targets`, over `window` (after a `settle` pause so
/// what was in flight lands first). Reads the server's own `apiserver_request_total`.
pub async fn writes_over(
    admin: &kube::Client,
    targets: &[(&str, &str, &str)],
    settle: Duration,
    window: Duration,
) -> Result<std::collections::BTreeMap<String, f64>> {
    tokio::time::sleep(settle).await;
    let before = writes(&request_totals(admin).await?, targets);
    tokio::time::sleep(window).await;
    let after = writes(&request_totals(admin).await?, targets);
    Ok(delta(&before, &after))
}

/// Who holds the Lease `home/name` now.
pub async fn lease_holder(admin: &kube::Client, home: &str, name: &str) -> Result<Option<String>> {
    let leases: Api<Lease> = Api::namespaced(admin.clone(), home);
    Ok(leases
        .get_opt(name)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}
