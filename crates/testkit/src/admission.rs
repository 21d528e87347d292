//! Admission webhooks, called as the API server calls them: the stored
//! `MutatingWebhookConfiguration`s and `ValidatingWebhookConfiguration`s decide which writes
//! are sent where (rules, namespace and object selectors, `matchConditions`), each webhook is
//! called over HTTPS trusting only its `caBundle`, within its `timeoutSeconds`, and its
//! `failurePolicy` decides what an unanswered call means. Mutating webhooks run first, in
//! order, each seeing the patches of those before; validating webhooks see the result.
//!
//! A `clientConfig.service` has no network here: [`crate::ApiServer::route_service`] says
//! which local address serves it, and the certificate is still verified against the
//! Service's DNS name (`<name>.<namespace>.svc`), as in a cluster.

use std::time::Duration;

use serde_json::{Value, json};

use std::collections::HashMap;

use crate::error::{ApiError, Cause};
use crate::faults::Verb;
use crate::selector::Selector;
use crate::shared::{Shared, Target, lock};
pub(crate) use crate::webhook::ServiceRoutes;
use crate::webhook::post_review;
use crate::write::{scale_of, serve};

/// What a write is, as the rules of a webhook see it.
#[derive(Clone, Debug)]
pub(crate) struct Attributes {
    pub group: String,
    pub version: String,
    /// The plural.
    pub resource: String,
    pub subresource: Option<String>,
    /// The kind of the object sent: the resource's, or `autoscaling/v1` Scale.
    pub kind: (String, String, String),
    /// `CREATE` or `UPDATE`.
    pub operation: &'static str,
    pub namespace: Option<String>,
    pub name: String,
    pub dry_run: bool,
}

/// One webhook of a stored configuration.
#[derive(Clone, Debug)]
pub(crate) struct Webhook {
    name: String,
    mutating: bool,
    client: Value,
    rules: Vec<Value>,
    namespace_selector: Value,
    object_selector: Value,
    match_conditions: Vec<(String, String)>,
    fail_closed: bool,
    side_effects_none: bool,
    timeout: Duration,
}

/// What admission decided: the patches the mutating webhooks returned, in order, and the
/// warnings to pass on to the client.
#[derive(Debug, Default)]
pub(crate) struct Admitted {
    pub patches: Vec<json_patch::Patch>,
    pub warnings: Vec<String>,
}

/// The webhooks of every stored configuration, mutating first (configurations by name, as
/// the API server orders them), then validating.
pub(crate) fn registered(configurations: &[(bool, Value)]) -> Vec<Webhook> {
    let mut sorted: Vec<&(bool, Value)> = configurations.iter().collect();
    sorted.sort_by_key(|(mutating, c)| {
        (
            !*mutating,
            c["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    });
    sorted
        .into_iter()
        .flat_map(|(mutating, config)| {
            config["webhooks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |hook| Webhook {
                    name: hook["name"].as_str().unwrap_or_default().to_string(),
                    mutating: *mutating,
                    client: hook["clientConfig"].clone(),
                    rules: hook["rules"].as_array().cloned().unwrap_or_default(),
                    namespace_selector: hook["namespaceSelector"].clone(),
                    object_selector: hook["objectSelector"].clone(),
                    match_conditions: hook["matchConditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| {
                            (
                                c["name"].as_str().unwrap_or_default().to_string(),
                                c["expression"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .collect(),
                    fail_closed: hook["failurePolicy"].as_str() != Some("Ignore"),
                    side_effects_none: matches!(
                        hook["sideEffects"].as_str(),
                        Some("None" | "NoneOnDryRun")
                    ),
                    timeout: Duration::from_secs(
                        hook["timeoutSeconds"].as_u64().unwrap_or(10).clamp(1, 30),
                    ),
                })
        })
        .collect()
}

fn listed(values: &Value, wanted: &str) -> bool {
    values
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|v| v == "*" || v == wanted)
}

fn rule_matches(rule: &Value, attrs: &Attributes) -> bool {
    let resource = match &attrs.subresource {
        Some(sub) => format!("{}/{sub}", attrs.resource),
        None => attrs.resource.clone(),
    };
    let resource_listed = rule["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|r| {
            r == resource
                || r == "*/*"
                || (r == "*" && attrs.subresource.is_none())
                || attrs
                    .subresource
                    .as_deref()
                    .is_some_and(|sub| r == format!("*/{sub}"))
        });
    let scope_ok = match rule["scope"].as_str() {
        Some("Namespaced") => attrs.namespace.is_some(),
        Some("Cluster") => attrs.namespace.is_none(),
        _ => true,
    };
    listed(&rule["operations"], attrs.operation)
        && listed(&rule["apiGroups"], &attrs.group)
        && listed(&rule["apiVersions"], &attrs.version)
        && resource_listed
        && scope_ok
}

/// A `LabelSelector` object (`matchLabels`, `matchExpressions`); a missing or empty one
/// matches everything.
fn selects(selector: &Value, labels: &Value) -> Result<bool, ApiError> {
    let mut parts = Vec::new();
    for (key, value) in selector["matchLabels"].as_object().into_iter().flatten() {
        parts.push(format!("{key}={}", value.as_str().unwrap_or_default()));
    }
    for expression in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = expression["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = expression["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match expression["operator"].as_str() {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("Exists") => key.to_string(),
            Some("DoesNotExist") => format!("!{key}"),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown selector operator {other:?}"
                )));
            }
        });
    }
    Ok(Selector::parse(&parts.join(","))?.matches_labels(labels))
}

impl Webhook {
    /// Whether this webhook is called for the write; `Err` when a condition cannot be
    /// evaluated (the failure policy then decides).
    pub(crate) fn applies(
        &self,
        attrs: &Attributes,
        namespace_labels: &Value,
        object: &Value,
        old: Option<&Value>,
    ) -> Result<bool, String> {
        if !self.rules.iter().any(|r| rule_matches(r, attrs)) {
            return Ok(false);
        }
        if attrs.namespace.is_some()
            && !selects(&self.namespace_selector, namespace_labels).map_err(|e| e.message)?
        {
            return Ok(false);
        }
        let labels_selected = |o: &Value| selects(&self.object_selector, &o["metadata"]["labels"]);
        let by_object = labels_selected(object).map_err(|e| e.message)?
            || old
                .map(labels_selected)
                .transpose()
                .map_err(|e| e.message)?
                .unwrap_or(false);
        if !by_object {
            return Ok(false);
        }
        for (name, expression) in &self.match_conditions {
            match condition(expression, attrs, object, old) {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) => return Err(format!("matchCondition {name:?}: {e}")),
            }
        }
        Ok(true)
    }
}

fn condition(
    expression: &str,
    attrs: &Attributes,
    object: &Value,
    old: Option<&Value>,
) -> Result<bool, String> {
    let program = cel::Program::compile(expression).map_err(|e| e.to_string())?;
    let mut context = cel::Context::default();
    let request = json!({"operation": attrs.operation, "name": attrs.name, "namespace": attrs.namespace,
        "dryRun": attrs.dry_run, "subResource": attrs.subresource});
    for (name, value) in [
        ("object", object.clone()),
        ("oldObject", old.cloned().unwrap_or(Value::Null)),
        ("request", request),
    ] {
        context
            .add_variable(name, value)
            .map_err(|e| e.to_string())?;
    }
    match program.execute(&context) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("evaluated to {other:?}, not a bool")),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs `hooks` (those that apply, in order) on the write of `object` replacing `old`.
pub(crate) async fn admit(
    hooks: &[Webhook],
    routes: &ServiceRoutes,
    attrs: &Attributes,
    namespace_labels: &Value,
    object: Value,
    old: Option<Value>,
) -> Result<Admitted, ApiError> {
    let mut object = object;
    let mut admitted = Admitted::default();
    for (i, hook) in hooks.iter().enumerate() {
        match hook.applies(attrs, namespace_labels, &object, old.as_ref()) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(why) if hook.fail_closed => return Err(failed(hook, &why)),
            Err(_) => continue,
        }
        if attrs.dry_run && !hook.side_effects_none {
            return Err(ApiError::bad_request(format!(
                "admission webhook {:?} does not support dry run",
                hook.name
            )));
        }
        let review = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": format!("testkit-{}-{i}", attrs.name),
                "kind": {"group": attrs.kind.0, "version": attrs.kind.1, "kind": attrs.kind.2},
                "resource": {"group": attrs.group, "version": attrs.version, "resource": attrs.resource},
                "requestKind": {"group": attrs.kind.0, "version": attrs.kind.1, "kind": attrs.kind.2},
                "requestResource": {"group": attrs.group, "version": attrs.version, "resource": attrs.resource},
                "subResource": attrs.subresource,
                "name": attrs.name, "namespace": attrs.namespace,
                "operation": attrs.operation,
                "userInfo": {"username": "testkit"},
                "object": object, "oldObject": old,
                "dryRun": attrs.dry_run,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": if attrs.operation == "CREATE" { "CreateOptions" } else { "UpdateOptions" }},
            }
        });
        let answer = match post_review(&hook.client, routes, &review, hook.timeout).await {
            Ok(answer) => answer,
            Err(why) if hook.fail_closed => return Err(failed(hook, &why)),
            Err(why) => {
                tracing::warn!(webhook = %hook.name, %why, "webhook failed; ignored (failurePolicy: Ignore)");
                continue;
            }
        };
        let response = &answer["response"];
        if response["uid"] != review["request"]["uid"] {
            let why = "the response's uid does not match the request's".to_string();
            if hook.fail_closed {
                return Err(failed(hook, &why));
            }
            continue;
        }
        admitted.warnings.extend(
            response["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| w.as_str().map(String::from)),
        );
        if response["allowed"] != true {
            return Err(denied(hook, &response["status"]));
        }
        if hook.mutating
            && let Some(encoded) = response.get("patch").filter(|p| !p.is_null())
        {
            let patch = decode_patch(encoded).map_err(|why| failed(hook, &why))?;
            json_patch::patch(&mut object, &patch)
                .map_err(|e| failed(hook, &format!("the patch does not apply: {e}")))?;
            admitted.patches.push(patch);
        }
    }
    Ok(admitted)
}

fn decode_patch(encoded: &Value) -> Result<json_patch::Patch, String> {
    let bytes: k8s_openapi::ByteString = serde_json::from_value(encoded.clone())
        .map_err(|e| format!("the patch is not base64: {e}"))?;
    serde_json::from_slice(&bytes.0).map_err(|e| format!("the patch is not a JSON patch: {e}"))
}

/// As the API server words a webhook it could not get an answer from.
fn failed(hook: &Webhook, why: &str) -> ApiError {
    ApiError::internal(format!(
        "Internal error occurred: failed calling webhook {:?}: failed to call webhook: {why}",
        hook.name
    ))
}

/// As the API server passes a webhook's refusal on: its code, reason and causes, its message
/// prefixed with the webhook's name.
fn denied(hook: &Webhook, status: &Value) -> ApiError {
    let message = status["message"]
        .as_str()
        .filter(|m| !m.is_empty())
        .unwrap_or("without explanation");
    let causes = status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| Cause {
            field: c["field"].as_str().unwrap_or_default().to_string(),
            message: c["message"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    let code = status["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    ApiError {
        code,
        reason: match status["reason"].as_str() {
            Some("Invalid") => "Invalid",
            Some("Forbidden") => "Forbidden",
            Some("Conflict") => "Conflict",
            _ => "BadRequest",
        },
        message: format!(
            "admission webhook {:?} denied the request: {message}",
            hook.name
        ),
        causes,
        retry_after: None,
    }
}

/// Admission of a write by the webhooks the stored configurations register: nothing to do
/// (and no cost) for a write none of them could match. Otherwise the write is first made on
/// a copy of the store to see the object as it would be stored, the webhooks judge it, and
/// the admission lock is held until the real write commits.
pub(crate) async fn admission_of<'a>(
    shared: &'a Shared,
    target: &Target,
    verb: Verb,
    q: &HashMap<String, String>,
    body: &[u8],
    content_type: &str,
    manager: &str,
) -> Result<(Option<tokio::sync::MutexGuard<'a, ()>>, Admitted), ApiError> {
    if !matches!(
        verb,
        Verb::Create | Verb::Update | Verb::Patch | Verb::Apply
    ) || target.events_view
    {
        return Ok((None, Admitted::default()));
    }
    let hooks = {
        let store = lock(&shared.store);
        let configurations: Vec<(bool, Value)> = store
            .all_of(
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
            )
            .into_iter()
            .map(|c| (true, c))
            .chain(
                store
                    .all_of(
                        "admissionregistration.k8s.io",
                        "validatingwebhookconfigurations",
                    )
                    .into_iter()
                    .map(|c| (false, c)),
            )
            .collect();
        registered(&configurations)
    };
    let rt = &target.rt;
    let ns = target.namespace.as_deref().unwrap_or_default();
    let name = target.name.as_deref().unwrap_or_default();
    // Only a write some webhook's rules match pays for admission (the lock, the dry run):
    // status writes, and the other kinds' writes, go straight through.
    let exists = verb != Verb::Create && lock(&shared.store).get(rt, ns, name).is_ok();
    let request = Attributes {
        group: rt.group.clone(),
        version: rt.version.clone(),
        resource: rt.plural.clone(),
        subresource: target.subresource.clone(),
        kind: (rt.group.clone(), rt.version.clone(), rt.kind.clone()),
        operation: if exists { "UPDATE" } else { "CREATE" },
        namespace: target.namespace.clone(),
        name: name.to_string(),
        dry_run: false,
    };
    if !hooks
        .iter()
        .any(|h| h.rules.iter().any(|r| rule_matches(r, &request)))
    {
        return Ok((None, Admitted::default()));
    }
    let gate = shared.admission.lock().await;
    let scale_paths = rt
        .scale
        .clone()
        .filter(|_| target.subresource.as_deref() == Some("scale"));
    let (old, namespace_labels) = {
        let store = lock(&shared.store);
        let old = store.get(rt, ns, name).ok().map(|o| match &scale_paths {
            Some(paths) => scale_of(&o, paths),
            None => o,
        });
        (old, store.namespace_labels(ns))
    };
    let mut dry = q.clone();
    dry.insert("dryRun".into(), "All".into());
    let (object, _) = serve(
        shared,
        target,
        verb,
        &dry,
        body,
        content_type,
        manager,
        false,
        Vec::new(),
    )?;
    let kind = match &scale_paths {
        Some(_) => (
            "autoscaling".to_string(),
            "v1".to_string(),
            "Scale".to_string(),
        ),
        None => (rt.group.clone(), rt.version.clone(), rt.kind.clone()),
    };
    let attrs = Attributes {
        group: rt.group.clone(),
        version: rt.version.clone(),
        resource: rt.plural.clone(),
        subresource: target.subresource.clone(),
        kind,
        operation: if old.is_some() && verb != Verb::Create {
            "UPDATE"
        } else {
            "CREATE"
        },
        namespace: target.namespace.clone(),
        name: object["metadata"]["name"]
            .as_str()
            .unwrap_or(name)
            .to_string(),
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
    };
    let routes = lock(&shared.services).clone();
    let admitted = admit(&hooks, &routes, &attrs, &namespace_labels, object, old).await?;
    Ok((Some(gate), admitted))
}
