//! A request to an operator as a user makes it: one annotation written on the resource (under
//! this tool's field manager), then the operator's answer awaited in its status.

use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::kinds::Kind;
use crate::{CliError, FIELD_MANAGER};

/// How often the status is read while waiting.
const LOOK_AGAIN: Duration = Duration::from_millis(500);

/// The resource a request is for.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub kind: &'a Kind,
    pub namespace: &'a str,
    pub name: &'a str,
}

impl Target<'_> {
    fn not_found(&self) -> CliError {
        CliError::NotFound {
            kind: self.kind.resource.kind.clone(),
            namespace: self.namespace.into(),
            name: self.name.into(),
        }
    }

    /// The resource as it is now.
    pub async fn get(&self, client: &Client) -> Result<DynamicObject, CliError> {
        let api = self.kind.api(client, Some(self.namespace));
        api.get_opt(self.name)
            .await?
            .ok_or_else(|| self.not_found())
    }

    /// Sets annotation `key` to `value` (`null` removes it), then waits for the operator's
    /// answer ([`Target::wait_for`]).
    pub async fn annotate_and_wait(
        &self,
        client: &Client,
        key: &str,
        value: Value,
        what: &str,
        wait: Duration,
        answered: impl Fn(&Value) -> Option<String>,
    ) -> Result<String, CliError> {
        self.annotate(client, key, value, None).await?;
        self.wait_for(client, what, wait, answered).await
    }

    /// Sets annotation `key` to `value` (`null` removes it). With `seen`, only if the resource
    /// is still at that resourceVersion: `Ok(false)` when it changed meanwhile.
    pub async fn annotate(
        &self,
        client: &Client,
        key: &str,
        value: Value,
        seen: Option<&str>,
    ) -> Result<bool, CliError> {
        let api = self.kind.api(client, Some(self.namespace));
        let mut patch = json!({"metadata": {"annotations": {key: value}}});
        if let Some(version) = seen {
            patch["metadata"]["resourceVersion"] = json!(version);
        }
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match api.patch(self.name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(self.not_found()),
            Err(kube::Error::Api(s)) if s.code == 409 && seen.is_some() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the status every half second until `answered` finds the operator's answer in
    /// it, for at most `wait`. `what` names the request in the error when no answer comes.
    pub async fn wait_for(
        &self,
        client: &Client,
        what: &str,
        wait: Duration,
        answered: impl Fn(&Value) -> Option<String>,
    ) -> Result<String, CliError> {
        let started = Instant::now();
        loop {
            if let Some(answer) = answered(&self.get(client).await?.data["status"]) {
                return Ok(answer);
            }
            if started.elapsed() >= wait {
                return Err(CliError::NoAnswer {
                    what: format!("{what} {}/{}", self.kind.resource.kind, self.name),
                    waited: wait,
                });
            }
            tokio::time::sleep(LOOK_AGAIN).await;
        }
    }
}
