//! The image this operator runs, read from its own Pod: what a Job that runs the operator's
//! binary (a PaymentService backup) is given, so it is exactly the release that is running,
//! pinned by digest, from whichever registry the platform pulls it from.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;

/// The Pod's name and namespace, which deploy/ sets from the downward API.
const POD_NAME: &str = "POD_NAME";
const POD_NAMESPACE: &str = "POD_NAMESPACE";

/// The image of `container` in this operator's Pod, by digest once the kubelet has pulled
/// it; `None` when the operator does not run in a Pod (out of cluster, the demo, or a
/// `POD_NAME` that names no Pod).
pub async fn own_image(
    client: &kube::Client,
    container: &str,
) -> Result<Option<String>, kube::Error> {
    let (Ok(name), Ok(namespace)) = (std::env::var(POD_NAME), std::env::var(POD_NAMESPACE)) else {
        return Ok(None);
    };
    let pod = Api::<Pod>::namespaced(client.clone(), &namespace)
        .get_opt(&name)
        .await?;
    Ok(pod.and_then(|pod| image_of(&pod, container)))
}

/// `container`'s image in `pod`: the digest the kubelet resolved (`imageID`, without a
/// runtime's `scheme://` prefix) when it has one, else the reference the spec names.
pub fn image_of(pod: &Pod, container: &str) -> Option<String> {
    let pulled = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find(|s| s.name == container)
        .map(|s| s.image_id.rsplit("://").next().unwrap_or_default())
        .filter(|id| id.contains("@sha256:"));
    pulled.map(String::from).or_else(|| {
        pod.spec
            .as_ref()?
            .containers
            .iter()
            .find(|c| c.name == container)?
            .image
            .clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(image_id: &str) -> Pod {
        serde_json::from_value(json!({
            "spec": {"containers": [
                {"name": "sidecar", "image": "proxy:1"},
                {"name": "manager", "image": "registry.example/payment-service-operator:0.1.0"},
            ]},
            "status": {"containerStatuses": [
                {"name": "sidecar", "image": "proxy:1", "imageID": "proxy@sha256:aa", "ready": true, "restartCount": 0},
                {"name": "manager", "image": "x", "imageID": image_id, "ready": true, "restartCount": 0},
            ]},
        }))
        .unwrap_or_default()
    }

    #[test]
    fn the_pulled_digest_is_preferred_without_the_runtime_prefix() {
        let pinned = "registry.example/payment-service-operator@sha256:0123";
        for id in [pinned.to_string(), format!("docker-pullable://{pinned}")] {
            assert_eq!(image_of(&pod(&id), "manager").as_deref(), Some(pinned));
        }
    }

    #[test]
    fn before_the_pull_the_spec_reference_is_used() {
        assert_eq!(
            image_of(&pod(""), "manager").as_deref(),
            Some("registry.example/payment-service-operator:0.1.0")
        );
        assert_eq!(image_of(&pod(""), "missing"), None);
    }
}
