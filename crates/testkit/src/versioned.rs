//! Requests made in a served version other than the storage version: their objects
//! converted on the way in (a create, a replace, a patch, an apply) and out (what is
//! returned, listed and watched), by the resource's [`Conversion`].

use std::convert::Infallible;

use bytes::Bytes;
use futures::StreamExt;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use serde_json::{Value, json};

use crate::conversion::Conversion;
use crate::error::ApiError;
use crate::faults::Verb;
use crate::registry::ResourceType;
use crate::shared::{ResponseBody, Shared, Target, lock, parse_body};
use crate::webhook::ServiceRoutes;

/// A request made in a version other than the storage version.
#[derive(Debug)]
pub(crate) struct View {
    pub conversion: Conversion,
    /// The version the client asked in.
    pub version: String,
    pub routes: ServiceRoutes,
}

/// The request to serve in the storage version instead: a create or replace with its object
/// converted; a patch made on the stored object as the client's version shows it, then sent
/// on as a replace of the whole object (guarded by its resourceVersion); a server-side apply
/// with its partial object converted.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn request(
    shared: &Shared,
    routes: &ServiceRoutes,
    conversion: &Conversion,
    storage: &ResourceType,
    target: &Target,
    verb: Verb,
    body: &Bytes,
    content_type: &str,
) -> Result<(Verb, Bytes, String), ApiError> {
    let to_storage = |object: Value| async move {
        let mut converted = conversion
            .convert(routes, vec![object], &conversion.storage_version)
            .await?;
        converted
            .pop()
            .ok_or_else(|| ApiError::internal("the conversion returned nothing"))
    };
    let bytes = |v: &Value| Bytes::from(serde_json::to_vec(v).unwrap_or_default());
    match verb {
        Verb::Create | Verb::Update | Verb::Apply => {
            let object = parse_body(body)?;
            let converted = to_storage(object).await?;
            Ok((verb, bytes(&converted), content_type.to_string()))
        }
        Verb::Patch => {
            let ns = target.namespace.as_deref().unwrap_or_default();
            let name = target.name.as_deref().unwrap_or_default();
            let stored = lock(&shared.store).get(storage, ns, name)?;
            let version = stored["metadata"]["resourceVersion"].clone();
            let mut viewed = conversion
                .convert(routes, vec![stored], &target.rt.version)
                .await?
                .pop()
                .ok_or_else(|| ApiError::internal("the conversion returned nothing"))?;
            let patch = parse_body(body)?;
            if content_type.starts_with("application/json-patch+json") {
                let ops: json_patch::Patch = serde_json::from_value(patch)
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                json_patch::patch(&mut viewed, &ops)
                    .map_err(|e| ApiError::invalid_patch(e.to_string()))?;
            } else {
                json_patch::merge(&mut viewed, &patch);
            }
            if viewed["metadata"]["resourceVersion"].is_null() {
                viewed["metadata"]["resourceVersion"] = version;
            }
            let converted = to_storage(viewed).await?;
            Ok((Verb::Update, bytes(&converted), "application/json".into()))
        }
        _ => Ok((verb, body.clone(), content_type.to_string())),
    }
}

impl View {
    /// What a request returned, in the client's version: an object of the resource, or the
    /// items of a list (a Table or a Status passes as it is).
    pub async fn response(&self, mut value: Value) -> Result<Value, ApiError> {
        let stored = self
            .conversion
            .api_version(&self.conversion.storage_version);
        let asked = self.conversion.api_version(&self.version);
        if value["apiVersion"] == stored.as_str() && value["kind"] == self.conversion.kind.as_str()
        {
            let mut converted = self
                .conversion
                .convert(&self.routes, vec![value], &self.version)
                .await?;
            return converted
                .pop()
                .ok_or_else(|| ApiError::internal("the conversion returned nothing"));
        }
        if value["kind"] == format!("{}List", self.conversion.kind).as_str() {
            let items = value["items"].as_array().cloned().unwrap_or_default();
            value["items"] = json!(
                self.conversion
                    .convert(&self.routes, items, &self.version)
                    .await?
            );
            value["apiVersion"] = json!(asked);
        }
        Ok(value)
    }

    /// A watch in the client's version: each event's object converted as it passes.
    pub fn watch(self, response: Response<ResponseBody>) -> Response<ResponseBody> {
        let (parts, body) = response.into_parts();
        let view = std::sync::Arc::new(self);
        let events = http_body_util::BodyDataStream::new(body).then(move |chunk| {
            let view = view.clone();
            async move {
                let Ok(line) = chunk;
                let converted = match serde_json::from_slice::<Value>(&line) {
                    Ok(mut event) if event["object"].is_object() => {
                        match view.response(event["object"].take()).await {
                            Ok(object) => event["object"] = object,
                            Err(e) => {
                                event = json!({"type": "ERROR", "object": e.to_status()});
                            }
                        }
                        let mut line = serde_json::to_vec(&event).unwrap_or_default();
                        line.push(b'\n');
                        Bytes::from(line)
                    }
                    _ => line,
                };
                Ok::<_, Infallible>(http_body::Frame::data(converted))
            }
        });
        Response::from_parts(parts, StreamBody::new(events).boxed_unsync())
    }
}
