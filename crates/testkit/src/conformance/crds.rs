//! Custom resource definitions: a kind of the case's own, served, validated (OpenAPI and CEL,
//! transition rules included), pruned, defaulted and described in `/openapi/v2`.

use std::time::Duration;

use anyhow::{Result, bail, ensure};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use super::{Backend, eventually};

/// A CRD of the case's own (CRD names are cluster-wide): `gadgets.<namespace>.example.io`.
fn gadget_crd(b: &Backend, schema: Value) -> Result<(CustomResourceDefinition, ApiResource)> {
    let group = format!("{}.example.io", b.namespace);
    let crd = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("gadgets.{group}")},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget", "shortNames": ["gd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                "schema": {"openAPIV3Schema": schema}}]
        }
    }))?;
    let gvk = GroupVersionKind::gvk(&group, "v1", "Gadget");
    Ok((crd, ApiResource::from_gvk_with_plural(&gvk, "gadgets")))
}

/// Installs the case's CRD and waits until its kind is served.
pub(super) async fn install_gadgets(
    b: &Backend,
    schema: Value,
) -> Result<(Api<CustomResourceDefinition>, String, Api<DynamicObject>)> {
    let crds: Api<CustomResourceDefinition> = Api::all(b.client.clone());
    let (crd, ar) = gadget_crd(b, schema)?;
    let name = crd.metadata.name.clone().unwrap_or_default();
    crds.create(&PostParams::default(), &crd).await?;
    eventually("the CRD is established", || async {
        let crd = crds.get(&name).await?;
        Ok(crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True"))
    })
    .await?;
    let gadgets: Api<DynamicObject> = Api::namespaced_with(b.client.clone(), &b.namespace, &ar);
    eventually("the kind is served", || async {
        Ok(gadgets.list(&ListParams::default()).await.is_ok())
    })
    .await?;
    Ok((crds, name, gadgets))
}

pub async fn crds_make_kinds_servable_validated_pruned_and_defaulted(b: &Backend) -> Result<()> {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "integer", "minimum": 1, "maximum": 10},
            "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
        }, "x-kubernetes-validations": [{"rule": "self.size != 7", "message": "size 7 is unlucky"}]},
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    }});
    let (crds, crd_name, gadgets) = install_gadgets(b, schema).await?;
    let group = format!("{}.example.io", b.namespace);
    let gadget = |name: &str, spec: Value| -> Result<DynamicObject> {
        Ok(serde_json::from_value(
            json!({"apiVersion": format!("{group}/v1"), "kind": "Gadget", "metadata": {"name": name}, "spec": spec, "status": {"ready": true}}),
        )?)
    };
    let created = gadgets
        .create(
            &PostParams::default(),
            &gadget("g", json!({"size": 2, "unknown": "dropped"}))?,
        )
        .await?;
    ensure!(created.data["spec"]["size"] == 2);
    ensure!(
        created.data["spec"]["mode"] == "safe",
        "defaulted: {}",
        created.data
    );
    ensure!(
        created.data["spec"].get("unknown").is_none(),
        "pruned: {}",
        created.data
    );
    ensure!(
        created.data.get("status").is_none(),
        "status is a subresource: {}",
        created.data
    );
    ensure!(created.metadata.generation == Some(1));

    for (spec, field) in [
        (json!({"size": 11}), "spec.size"),
        (json!({"size": 2, "mode": "reckless"}), "spec.mode"),
        (json!({}), "spec.size"),
        (json!({"size": 7}), "spec"),
    ] {
        match gadgets
            .create(&PostParams::default(), &gadget("bad", spec.clone())?)
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 422 => {
                ensure!(s.message.contains(field), "{spec}: {}", s.message);
            }
            other => bail!("{spec}: expected 422 naming {field}, got {other:?}"),
        }
    }
    crds.delete(&crd_name, &DeleteParams::default()).await?;
    eventually("the CRD goes", || async {
        Ok(crds.get_opt(&crd_name).await?.is_none())
    })
    .await
}

pub async fn openapi_v2_describes_builtin_and_custom_kinds(b: &Backend) -> Result<()> {
    let (crds, crd_name, _) = install_gadgets(b, json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}})).await?;
    let group = format!("{}.example.io", b.namespace);
    let reversed: Vec<&str> = group.split('.').rev().collect();
    let definition = format!("{}.v1.Gadget", reversed.join("."));
    let mut seen = Vec::new();
    for _ in 0..100 {
        let text = b
            .client
            .request_text(http::Request::get("/openapi/v2").body(Vec::new())?)
            .await?;
        let doc: Value = serde_json::from_str(&text)?;
        let defs = doc["definitions"].as_object().cloned().unwrap_or_default();
        ensure!(
            defs.contains_key("io.k8s.api.core.v1.ConfigMap"),
            "no ConfigMap definition"
        );
        ensure!(
            defs["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"].is_object(),
            "no Deployment spec"
        );
        let described = defs.get(&definition).is_some_and(|d| {
            d["x-kubernetes-group-version-kind"][0]["kind"] == "Gadget"
                && d["properties"]["spec"].is_object()
        });
        if described {
            crds.delete(&crd_name, &DeleteParams::default()).await?;
            return Ok(());
        }
        seen = defs
            .keys()
            .filter(|k| k.contains("Gadget"))
            .cloned()
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("/openapi/v2 never described {definition}; Gadget definitions seen: {seen:?}")
}

/// Transition rules (`oldSelf`): an immutable field, a value that may not fall while a flag
/// is set, and a root rule that reads the stored status; each with a `messageExpression`
/// naming the values. None of them is judged on create. The server estimates each
/// expression's cost when the CRD is written: strings need a `maxLength` and numbers are
/// named with `format`, as `string(int)` concatenated is costed as unbounded.
pub async fn transition_rules_judge_an_update_by_the_old_object(b: &Backend) -> Result<()> {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "required": ["tier", "retention", "keeping", "mode"], "properties": {
            "tier": {"type": "string", "maxLength": 16, "x-kubernetes-validations": [{
                "rule": "self == oldSelf",
                "messageExpression": "'tier cannot change from ' + oldSelf + ' to ' + self",
            }]},
            "retention": {"type": "integer"},
            "keeping": {"type": "boolean"},
            "mode": {"type": "string"},
        }, "x-kubernetes-validations": [{
            "rule": "!oldSelf.keeping || self.retention >= oldSelf.retention",
            "messageExpression": "'retention cannot fall from %d to %d while keeping'.format([oldSelf.retention, self.retention])",
        }]},
        "status": {"type": "object", "properties": {"busy": {"type": "boolean"}}},
    }, "x-kubernetes-validations": [{
        "rule": "!has(oldSelf.status) || !has(oldSelf.status.busy) || !oldSelf.status.busy || self.spec.mode == oldSelf.spec.mode",
        "message": "mode is fixed while busy",
        "fieldPath": ".spec.mode",
    }]});
    let (crds, crd_name, gadgets) = install_gadgets(b, schema).await?;
    let group = format!("{}.example.io", b.namespace);
    let spec = json!({"tier": "gold", "retention": 30, "keeping": true, "mode": "fast"});
    let gadget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1"), "kind": "Gadget", "metadata": {"name": "g"}, "spec": spec,
    }))?;
    gadgets.create(&PostParams::default(), &gadget).await?;
    let edit = |change: Value| {
        let gadgets = gadgets.clone();
        async move {
            let mut current = gadgets.get("g").await?;
            json_patch::merge(&mut current.data["spec"], &change);
            gadgets.replace("g", &PostParams::default(), &current).await
        }
    };
    let refused = |r: Result<DynamicObject, kube::Error>, field: &str, message: &str| match r {
        Err(kube::Error::Api(s))
            if s.code == 422 && s.message.contains(field) && s.message.contains(message) =>
        {
            Ok(())
        }
        other => bail!("expected 422 naming {field} with {message:?}, got {other:?}"),
    };

    refused(
        edit(json!({"tier": "silver"})).await,
        "spec.tier",
        "tier cannot change from gold to silver",
    )?;
    refused(
        edit(json!({"retention": 7})).await,
        "spec",
        "retention cannot fall from 30 to 7 while keeping",
    )?;
    edit(json!({"retention": 60})).await?;
    edit(json!({"keeping": false})).await?;
    edit(json!({"retention": 7})).await?;

    let status = |busy: bool| Patch::Merge(json!({"status": {"busy": busy}}));
    gadgets
        .patch_status("g", &PatchParams::default(), &status(true))
        .await?;
    refused(
        edit(json!({"mode": "safe"})).await,
        "spec.mode",
        "mode is fixed while busy",
    )?;
    gadgets
        .patch_status("g", &PatchParams::default(), &status(false))
        .await?;
    edit(json!({"mode": "safe"})).await?;

    let mut other = gadget.clone();
    other.metadata.name = Some("h".into());
    other.data["spec"] = json!({"tier": "bronze", "retention": 1, "keeping": true, "mode": "x"});
    gadgets.create(&PostParams::default(), &other).await?;

    crds.delete(&crd_name, &DeleteParams::default()).await?;
    eventually("the CRD goes", || async {
        Ok(crds.get_opt(&crd_name).await?.is_none())
    })
    .await
}
