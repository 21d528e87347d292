//! deploy/ as a platform team installs it: every kustomization renders with `kubectl
//! kustomize`, and what it renders is installable and least-privilege. Needs kubectl, not a
//! cluster.

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};
use e2e::manifests::{kustomizations, render};
use operator_core::OperatorDescriptor;
use serde_json::Value;

/// The operators whose overlays deploy/ holds.
pub(crate) const OPERATORS: [&OperatorDescriptor; 5] = [
    &payment_service::OPERATOR,
    &trading_algorithm::OPERATOR,
    &batch_processor::OPERATOR,
    &clearing_adapter::OPERATOR,
    &saga_orchestrator::OPERATOR,
];

/// What each operator must be able to do: the verbs on its own resources (`patch` where it
/// holds a finalizer) and the child it creates first.
fn needs(operator: &str) -> (&'static [&'static str], (&'static str, &'static str)) {
    match operator {
        "batch-processor" => (&["list", "watch"], ("batch", "cronjobs")),
        _ => (&["list", "watch", "patch"], ("apps", "deployments")),
    }
}

fn overlays() -> impl Iterator<Item = &'static str> {
    OPERATORS.iter().map(|o| o.package())
}

pub(crate) fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn namespace(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or_default()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

#[test]
fn every_kustomization_renders() -> Result<()> {
    let all = kustomizations()?;
    for expected in ["crds", "namespaces", "samples"]
        .into_iter()
        .chain(overlays())
    {
        assert!(all.iter().any(|k| k == expected), "{expected} in {all:?}");
    }
    for dir in &all {
        let objects = render(dir).with_context(|| format!("deploy/{dir}"))?;
        assert!(!objects.is_empty(), "deploy/{dir} renders nothing");
    }
    Ok(())
}

/// Uninstalling one operator must delete only what belongs to it: never a CRD (and with it
/// every resource of that kind) or a namespace where other things live.
#[test]
fn an_operator_overlay_holds_only_what_belongs_to_it() -> Result<()> {
    let namespaces: BTreeSet<String> = render("namespaces")?
        .iter()
        .filter(|o| kind(o) == "Namespace")
        .map(|o| name(o).to_string())
        .collect();
    for operator in overlays() {
        for o in render(operator)? {
            assert!(
                !matches!(kind(&o), "CustomResourceDefinition" | "Namespace"),
                "deploy/{operator} holds {} {}: CRDs and namespaces are installed on their own",
                kind(&o),
                name(&o)
            );
            if matches!(
                kind(&o),
                "ClusterRole"
                    | "ClusterRoleBinding"
                    | "ValidatingWebhookConfiguration"
                    | "MutatingWebhookConfiguration"
            ) {
                continue;
            }
            assert!(
                namespaces.contains(namespace(&o)),
                "{} {} in deploy/{operator} is in namespace {:?}, which deploy/namespaces does not create",
                kind(&o),
                name(&o),
                namespace(&o)
            );
        }
    }
    for o in render("samples")? {
        assert_ne!(kind(&o), "Namespace", "samples must not own a namespace");
        assert!(
            namespaces.contains(namespace(&o)),
            "{} {}",
            kind(&o),
            name(&o)
        );
    }
    Ok(())
}

/// Cluster-wide, an operator may hold only its rights over its own resources (so a namespace
/// deletion can never strand its finalizer), reading namespaces, reading and patching its own
/// webhook configurations and converting CRDs by name (the CA bundle), and asking who a
/// scraper is and whether it may get /metrics (reviews, which read and write nothing);
/// nothing over children. The metrics-reader ClusterRole it ships is for Prometheus, bound to
/// nobody by deploy/<operator>.
#[test]
fn cluster_wide_rights_cover_only_the_operators_own_resources() -> Result<()> {
    for descriptor in OPERATORS {
        let operator = descriptor.package();
        let group = descriptor.resources[0].resource.group();
        let group = group.as_str();
        let objects = render(operator)?;
        let names = operator_core::admission::WebhookNames::of(&descriptor.binary.identity);
        let converted: Vec<String> = descriptor
            .resources
            .iter()
            .filter(|r| r.convert.is_some())
            .map(|r| r.resource.crd_name())
            .collect();
        let cluster_roles: Vec<&Value> = objects
            .iter()
            .filter(|o| kind(o) == "ClusterRole")
            .collect();
        assert_eq!(cluster_roles.len(), 4, "deploy/{operator}");
        let reader = format!("{}-metrics-reader", descriptor.binary_name());
        let bound: Vec<&str> = objects
            .iter()
            .filter(|o| kind(o) == "ClusterRoleBinding")
            .filter_map(|b| b["roleRef"]["name"].as_str())
            .collect();
        assert!(
            !bound.contains(&reader.as_str()),
            "deploy/{operator} binds {reader}"
        );
        for role in cluster_roles.iter().filter(|r| name(r) == reader) {
            assert_eq!(
                role["rules"],
                serde_json::json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])
            );
        }
        for rule in cluster_roles
            .iter()
            .filter(|r| name(r) != reader)
            .flat_map(|r| r["rules"].as_array().into_iter().flatten())
        {
            let groups = strings(&rule["apiGroups"]);
            let resources = strings(&rule["resources"]);
            let verbs = strings(&rule["verbs"]);
            let named = strings(&rule["resourceNames"]);
            let own = groups == [group];
            let namespaces = groups == [""] && resources == ["namespaces"] && verbs == ["get"];
            let ca_bundle = verbs == ["get", "patch"]
                && match (groups.as_slice(), resources.as_slice()) {
                    (["admissionregistration.k8s.io"], ["validatingwebhookconfigurations"]) => {
                        named == [names.validating.as_str()]
                    }
                    (["admissionregistration.k8s.io"], ["mutatingwebhookconfigurations"]) => {
                        named == [names.mutating.as_str()]
                    }
                    (["apiextensions.k8s.io"], ["customresourcedefinitions"]) => {
                        !named.is_empty() && named.iter().all(|n| converted.iter().any(|c| c == n))
                    }
                    _ => false,
                };
            let reviews = verbs == ["create"]
                && matches!(
                    (groups.as_slice(), resources.as_slice()),
                    (["authentication.k8s.io"], ["tokenreviews"])
                        | (["authorization.k8s.io"], ["subjectaccessreviews"])
                );
            assert!(
                own || namespaces || ca_bundle || reviews,
                "deploy/{operator}: cluster-wide {rule}"
            );
            assert!(
                reviews
                    || !verbs
                        .iter()
                        .any(|v| matches!(*v, "create" | "delete" | "deletecollection"))
            );
        }
    }
    Ok(())
}

/// The operator has rights where it works: its manager Role is in the namespace it watches
/// and bound to its own ServiceAccount; its leader-election Role is in its own namespace.
#[test]
fn each_operator_is_bound_where_it_works() -> Result<()> {
    for operator in overlays() {
        let objects = render(operator)?;
        let deployment = objects
            .iter()
            .find(|o| kind(o) == "Deployment")
            .with_context(|| format!("deploy/{operator} has a Deployment"))?;
        let home = namespace(deployment);
        let pod = &deployment["spec"]["template"]["spec"];
        let account = pod["serviceAccountName"]
            .as_str()
            .context("serviceAccountName")?;
        let watched = pod["containers"][0]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == "WATCH_NAMESPACE")
            .and_then(|e| e["value"].as_str())
            .context("WATCH_NAMESPACE")?;
        assert!(
            !watched.is_empty(),
            "deploy/{operator} watches one namespace"
        );
        assert!(
            objects
                .iter()
                .any(|o| kind(o) == "ServiceAccount" && name(o) == account && namespace(o) == home),
            "deploy/{operator}: ServiceAccount {home}/{account}"
        );

        let grants = |role: &Value, group: &str, resource: &str, verb: &str| {
            role["rules"].as_array().into_iter().flatten().any(|r| {
                strings(&r["apiGroups"]).contains(&group)
                    && strings(&r["resources"]).contains(&resource)
                    && strings(&r["verbs"]).contains(&verb)
            })
        };
        let bound = |binding: &Value| {
            binding["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| {
                    s["kind"] == "ServiceAccount" && s["name"] == account && s["namespace"] == home
                })
        };
        let cluster_wide = |group: &str, resource: &str, verb: &str| {
            objects.iter().any(|binding| {
                kind(binding) == "ClusterRoleBinding"
                    && bound(binding)
                    && objects.iter().any(|role| {
                        kind(role) == "ClusterRole"
                            && name(role) == binding["roleRef"]["name"].as_str().unwrap_or_default()
                            && grants(role, group, resource, verb)
                    })
            })
        };
        let can = |ns: &str, group: &str, resource: &str, verb: &str| {
            cluster_wide(group, resource, verb)
                || objects.iter().any(|binding| {
                    kind(binding) == "RoleBinding"
                        && namespace(binding) == ns
                        && binding["subjects"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|s| {
                                s["kind"] == "ServiceAccount"
                                    && s["name"] == account
                                    && s["namespace"] == home
                            })
                        && objects.iter().any(|role| {
                            kind(role) == "Role"
                                && namespace(role) == ns
                                && name(role)
                                    == binding["roleRef"]["name"].as_str().unwrap_or_default()
                                && role["rules"].as_array().into_iter().flatten().any(|r| {
                                    strings(&r["apiGroups"]).contains(&group)
                                        && strings(&r["resources"]).contains(&resource)
                                        && strings(&r["verbs"]).contains(&verb)
                                })
                        })
                })
        };
        let descriptor = OPERATORS
            .iter()
            .find(|o| o.package() == operator)
            .context("descriptor")?;
        let served = &descriptor.resources[0];
        let (group, resource) = (served.resource.group(), served.resource.plural());
        let (group, resource) = (group.as_str(), resource.as_str());
        let (verbs, (child_group, child)) = needs(operator);
        for &verb in verbs {
            assert!(
                can(watched, group, resource, verb),
                "deploy/{operator}: {account} cannot {verb} {resource} in {watched}"
            );
            assert!(
                cluster_wide(group, resource, verb),
                "deploy/{operator}: the right to {verb} its {resource} must outlive a namespace's RoleBindings"
            );
        }
        assert!(
            can(watched, child_group, child, "create"),
            "deploy/{operator}: cannot create {child} in {watched}"
        );
        assert!(can(watched, "events.k8s.io", "events", "create"));
        assert!(
            can(home, "coordination.k8s.io", "leases", "update"),
            "deploy/{operator}: leader election in {home}"
        );

        // A NetworkPolicy selects the operator's pods.
        let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
        assert!(
            objects.iter().any(|o| {
                kind(o) == "NetworkPolicy"
                    && namespace(o) == home
                    && o["spec"]["podSelector"]["matchLabels"]
                        .as_object()
                        .is_some_and(|m| m.iter().all(|(k, v)| pod_labels[k] == *v))
            }),
            "deploy/{operator}: no NetworkPolicy for the operator's pods"
        );
        // The config file it reads is in its namespace.
        let config = pod["volumes"][0]["configMap"]["name"]
            .as_str()
            .unwrap_or_default();
        assert!(
            objects
                .iter()
                .any(|o| kind(o) == "ConfigMap" && name(o) == config && namespace(o) == home),
            "deploy/{operator}: ConfigMap {home}/{config}"
        );
    }
    Ok(())
}

/// No wildcard; `update` only where nothing else will do (finalizers, the Lease); no `get` on
/// a status subresource the operator only patches.
#[test]
fn rbac_grants_only_the_verbs_the_code_uses() -> Result<()> {
    for operator in overlays() {
        for role in render(operator)?
            .iter()
            .filter(|o| matches!(kind(o), "Role" | "ClusterRole"))
        {
            for rule in role["rules"].as_array().into_iter().flatten() {
                let resources = strings(&rule["resources"]);
                let verbs = strings(&rule["verbs"]);
                for list in ["apiGroups", "resources", "verbs"] {
                    if strings(&rule[list]).contains(&"*") {
                        bail!("deploy/{operator} {}: wildcard in {list}", name(role));
                    }
                }
                if verbs.contains(&"update") && resources != ["tradingalgorithms/status"] {
                    // The webhook certificate's Secret is replaced as read (its
                    // resourceVersion makes concurrent renewals conflict): that one only.
                    let certificate = resources == ["secrets"]
                        && strings(&rule["resourceNames"]).len() == 1
                        && verbs == ["get", "update"];
                    // Seed 002's `auth can-i update tradingalgorithms/status` as written: an
                    // object named status, by that one name (patch already covers it).
                    let seed_002_literal = resources == ["tradingalgorithms"]
                        && strings(&rule["resourceNames"]) == ["status"]
                        && verbs == ["update"];
                    assert!(
                        certificate
                            || seed_002_literal
                            || resources
                                .iter()
                                .all(|r| r.ends_with("/finalizers") || *r == "leases"),
                        "deploy/{operator} {}: update on {resources:?}",
                        name(role)
                    );
                }
                if resources.iter().any(|r| r.ends_with("/status")) {
                    // Seed 002's own check asks `update` of the trading operator's status
                    // (no more power than patch on the subresource); the others patch only.
                    let seed_002 = resources == ["tradingalgorithms/status"];
                    let allowed: &[&str] = if seed_002 {
                        &["patch", "update"]
                    } else {
                        &["patch"]
                    };
                    assert_eq!(verbs, allowed, "deploy/{operator} {}", name(role));
                }
                if resources.contains(&"persistentvolumeclaims") {
                    assert!(
                        !verbs.contains(&"delete"),
                        "the backup claim is never deleted"
                    );
                }
            }
        }
    }
    Ok(())
}

/// `deploy/<operator>` (the operator issues its own webhook certificate) and
/// `deploy/admission/<operator>` (cert-manager issues it): the operator with its webhooks
/// on. Every webhook fails closed, has no side effects, speaks admission/v1, matches only
/// the operator's own kinds in the namespace it serves, and reaches a path the operator
/// serves through a Service that selects its pods on a port the pod opens. By default the
/// operator may keep exactly its certificate's Secret and the configurations carry no CA
/// (it writes its own); with cert-manager the pod mounts the Certificate's Secret and the
/// configurations trust the CA cert-manager injects from it.
#[test]
fn the_webhook_objects_wire_each_webhook_to_the_operators_server() -> Result<()> {
    for (descriptor, cert_manager) in OPERATORS.iter().flat_map(|d| [(d, false), (d, true)]) {
        let operator = descriptor.package();
        let dir = if cert_manager {
            format!("admission/{operator}")
        } else {
            operator.to_string()
        };
        let objects = render(&dir)?;
        let find = |kind_: &'static str| objects.iter().filter(move |o| kind(o) == kind_);
        let deployment = find("Deployment").next().context("a Deployment")?;
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let args = strings(&container["args"]);
        assert!(
            args.contains(&"--webhook-bind-address=:9443"),
            "{dir}: {args:?}"
        );
        let names = operator_core::admission::WebhookNames::of(&descriptor.binary.identity);
        let certificate = find("Certificate").next();
        if let Some(certificate) = certificate.filter(|_| cert_manager) {
            let secret = certificate["spec"]["secretName"]
                .as_str()
                .unwrap_or_default();
            let volumes = deployment["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let cert_volume = volumes
                .iter()
                .find(|v| v["secret"]["secretName"] == secret)
                .with_context(|| format!("{dir}: the pod mounts Secret {secret}"))?;
            let mounted = container["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["name"] == cert_volume["name"])
                .and_then(|m| m["mountPath"].as_str())
                .unwrap_or_default();
            assert!(
                args.contains(&format!("--webhook-cert-dir={mounted}").as_str()),
                "{dir}: {args:?}"
            );
        } else {
            assert!(!cert_manager, "{dir}: a Certificate");
            assert!(
                !args.iter().any(|a| a.starts_with("--webhook-cert-dir")),
                "{dir}: the operator issues its own certificate: {args:?}"
            );
            let keeps_secret = find("Role").any(|role| {
                namespace(role) == namespace(deployment)
                    && role["rules"].as_array().into_iter().flatten().any(|r| {
                        strings(&r["resources"]) == ["secrets"]
                            && strings(&r["resourceNames"]) == [names.secret.as_str()]
                            && strings(&r["verbs"]) == ["get", "update"]
                    })
            });
            assert!(keeps_secret, "{dir}: may keep Secret {}", names.secret);
        }
        assert!(
            container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "webhook" && p["containerPort"] == 9443),
            "{dir}: the pod opens the webhook port"
        );
        let service = find("Service")
            .find(|s| s["spec"]["ports"][0]["targetPort"] == "webhook")
            .context("the webhook Service")?;
        assert_eq!(
            service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"],
            "{operator}: the webhook Service selects the operator's pods"
        );
        let policy = find("NetworkPolicy").next().context("a NetworkPolicy")?;
        assert!(
            policy["spec"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|rule| rule["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["port"] == 9443)),
            "{operator}: the API server may reach the webhook port"
        );
        let operator_ns = namespace(deployment);
        let watched = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == "WATCH_NAMESPACE")
            .and_then(|e| e["value"].as_str())
            .unwrap_or_default();
        let served_paths: BTreeSet<String> = descriptor
            .admission
            .iter()
            .flat_map(|a| [a.validate_path(), a.mutate_path()])
            .collect();
        let own: BTreeSet<(String, String)> = descriptor
            .resources
            .iter()
            .map(|r| (r.resource.group(), r.resource.plural()))
            .collect();
        for kind_ in [
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        ] {
            let config = find(kind_)
                .next()
                .with_context(|| format!("{operator}: a {kind_}"))?;
            let injected = &config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"];
            match certificate.filter(|_| cert_manager) {
                Some(certificate) => assert_eq!(
                    *injected,
                    format!("{}/{}", namespace(certificate), name(certificate)),
                    "{dir}: {kind_} trusts the CA of the Certificate"
                ),
                None => assert_eq!(*injected, Value::Null, "{dir}: the operator writes its CA"),
            }
            let expected_name = match kind_ {
                "ValidatingWebhookConfiguration" => &names.validating,
                _ => &names.mutating,
            };
            assert_eq!(
                name(config),
                expected_name,
                "{dir}: where the operator writes its CA"
            );
            let hooks = config["webhooks"].as_array().cloned().unwrap_or_default();
            assert_eq!(
                hooks.len(),
                descriptor.admission.len(),
                "{operator}: one {kind_} webhook per kind"
            );
            for hook in hooks {
                assert_eq!(hook["failurePolicy"], "Fail");
                assert_eq!(hook["sideEffects"], "None");
                assert_eq!(strings(&hook["admissionReviewVersions"]), ["v1"]);
                let to = &hook["clientConfig"]["service"];
                assert_eq!(
                    (to["name"].as_str(), to["namespace"].as_str()),
                    (Some(name(service)), Some(namespace(service)))
                );
                assert!(
                    served_paths.contains(to["path"].as_str().unwrap_or_default()),
                    "{operator}: {to}"
                );
                for rule in hook["rules"].as_array().into_iter().flatten() {
                    for group in strings(&rule["apiGroups"]) {
                        for resource in strings(&rule["resources"]) {
                            let plural = resource.split('/').next().unwrap_or_default();
                            assert!(
                                own.contains(&(group.to_string(), plural.to_string())),
                                "{operator}: {group}/{resource} is not its own"
                            );
                        }
                    }
                    assert_eq!(strings(&rule["operations"]), ["CREATE", "UPDATE"]);
                }
                let selected = strings(&hook["namespaceSelector"]["matchExpressions"][0]["values"]);
                assert_eq!(
                    selected,
                    [watched],
                    "{operator}: only the namespace it serves"
                );
                if watched != operator_ns {
                    assert!(
                        !selected.contains(&operator_ns),
                        "{operator}: its own namespace is left out"
                    );
                }
            }
        }
    }
    Ok(())
}
