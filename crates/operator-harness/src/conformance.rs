//! The checks every operator passes, whatever its domain, each on a fresh cluster:
//!
//! - N resources converge under injected faults (errors, throttling, conflicts, latency,
//!   dropped watches) with every child present once and none orphaned;
//! - a crash in the middle of convergence leaves nothing a new operator rewrites;
//! - a converged resync writes nothing;
//! - every pod the children would start is restricted (Pod Security and OpenShift's SCC);
//! - a paused resource's children get no write until it is resumed;
//! - deleting every resource leaves behind only what the operator keeps on purpose;
//! - another team's object with a child's name is never touched ([`crate::foreign`]).
//!
//! An operator runs them with [`conformance_tests!`](crate::conformance_tests) and a
//! [`Subject`] describing its resources and their children.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Result, ensure};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};

use operator_core::descriptor::ServedResource;
use operator_core::pause::{PAUSE_ANNOTATION, PAUSED};
use operator_core::tooling::ChildRef;
use operator_core::{Backoff, ControllerSettings, OperatorDescriptor};
use serde_json::{Value, json};
use testkit::Faults;

use crate::{Harness, HarnessBuilder, until};

/// How long convergence may take under faults.
const UNDER_FAULTS: Duration = Duration::from_secs(120);
/// How long convergence may take without faults.
const CONVERGE: Duration = Duration::from_secs(60);

/// Objects of one resource, given its name and the resource as JSON.
pub type ChildrenOf = fn(&str, &Value) -> Vec<ChildRef>;

/// [`ChildrenOf`] for an operator that has none of a sort (keeps nothing, uses nothing found).
pub fn none(_: &str, _: &Value) -> Vec<ChildRef> {
    Vec::new()
}

/// An operator, as the conformance checks exercise it.
#[derive(Clone, Copy, Debug)]
pub struct Subject {
    pub operator: &'static OperatorDescriptor,
    /// A cluster with its CRDs and namespace; the operator not yet started.
    pub harness: fn() -> HarnessBuilder,
    /// The i-th resource (as JSON, namespace included).
    pub resource: fn(usize) -> Value,
    /// The children one resource (its name, and it as JSON) has once converged.
    pub children: ChildrenOf,
    /// The children the operator keeps on purpose after its resource is deleted (released,
    /// not owned: a claim holding backups).
    pub kept_after_deletion: ChildrenOf,
    /// Objects the operator uses as it finds them when they exist (an account the user names),
    /// creating them only when missing: not children whose name another team can take.
    pub used_as_found: ChildrenOf,
    /// Child kinds (plurals) something besides the operator writes: the simulated workload
    /// controllers update Deployments and autoscalers. The rewrite check skips them.
    pub written_by_others: &'static [&'static str],
}

impl Subject {
    fn served(&self) -> Result<&'static ServedResource> {
        self.operator
            .resources
            .first()
            .ok_or_else(|| anyhow::anyhow!("{} serves no resource", self.operator.package()))
    }

    fn manager(&self) -> &'static str {
        self.operator.binary_name()
    }

    /// Creates resources `0..n`.
    pub async fn create(&self, harness: &Harness, n: usize) -> Result<()> {
        for i in 0..n {
            self.create_one(harness, &(self.resource)(i)).await?;
        }
        Ok(())
    }

    /// Creates one resource (as JSON).
    pub async fn create_one(&self, harness: &Harness, resource: &Value) -> Result<()> {
        let object: DynamicObject = serde_json::from_value(resource.clone())?;
        self.api_for(harness, resource)?
            .create(&PostParams::default(), &object)
            .await?;
        Ok(())
    }

    /// The API of the resource's kind in its namespace.
    pub fn api_for(&self, harness: &Harness, resource: &Value) -> Result<Api<DynamicObject>> {
        dynamic_api(harness, self.served()?, resource)
    }

    /// The resources that exist, as JSON.
    pub fn resources(&self, harness: &Harness) -> Result<Vec<Value>> {
        let served = self.served()?;
        let kind = served.resource.resource();
        Ok(harness.server.objects(&kind.api_version, &kind.plural))
    }

    /// How many resources have converged.
    pub fn converged(&self, harness: &Harness) -> usize {
        match self.served() {
            Ok(served) => self
                .resources(harness)
                .unwrap_or_default()
                .iter()
                .filter(|r| served.converged.check(r))
                .count(),
            Err(_) => 0,
        }
    }

    /// The kinds of child the resources `0..n` have.
    fn child_kinds(&self, n: usize) -> BTreeSet<(&'static str, &'static str)> {
        (0..n)
            .flat_map(|i| {
                let resource = (self.resource)(i);
                (self.children)(&crate::name_of(&resource), &resource)
            })
            .map(|c| (c.api_version, c.plural))
            .collect()
    }

    /// Every object of those kinds the operator manages: `kind/name` → resourceVersion.
    fn managed(&self, harness: &Harness, n: usize) -> BTreeMap<String, Value> {
        self.child_kinds(n)
            .into_iter()
            .flat_map(|(api_version, plural)| {
                harness
                    .server
                    .objects(api_version, plural)
                    .into_iter()
                    .map(move |o| (plural, o))
            })
            .filter(|(_, o)| {
                o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == self.manager()
            })
            .map(|(plural, o)| {
                let name = o["metadata"]["name"].as_str().unwrap_or_default();
                (format!("{plural}/{name}"), o)
            })
            .collect()
    }

    /// Each child exists exactly once, owned by the resource it belongs to, and nothing the
    /// operator manages is without an owner that exists (or kept on purpose).
    pub fn assert_children_exact(&self, harness: &Harness, n: usize) -> Result<()> {
        let resources = self.resources(harness)?;
        let mut expected: BTreeMap<String, String> = BTreeMap::new();
        for resource in &resources {
            let uid = resource["metadata"]["uid"].as_str().unwrap_or_default();
            for child in (self.children)(&crate::name_of(resource), resource) {
                expected.insert(format!("{}/{}", child.plural, child.name), uid.to_string());
            }
        }
        let managed = self.managed(harness, n);
        let mut actual: BTreeMap<String, String> = BTreeMap::new();
        for (key, object) in &managed {
            let owners: Vec<&str> = object["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["uid"].as_str())
                .collect();
            ensure!(owners.len() <= 1, "{key} has {} owners", owners.len());
            if let Some(owner) = owners.first() {
                actual.insert(key.clone(), (*owner).to_string());
            }
        }
        let missing: Vec<&String> = expected
            .keys()
            .filter(|k| !actual.contains_key(*k))
            .collect();
        let orphaned: Vec<&String> = actual
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .collect();
        let misowned: Vec<&String> = expected
            .iter()
            .filter(|(k, uid)| actual.get(*k).is_some_and(|a| a != *uid))
            .map(|(k, _)| k)
            .collect();
        ensure!(
            missing.is_empty() && orphaned.is_empty() && misowned.is_empty(),
            "children: missing {missing:?}, orphaned {orphaned:?}, owned by another resource {misowned:?}"
        );
        Ok(())
    }
}

fn dynamic_api(
    harness: &Harness,
    served: &ServedResource,
    resource: &Value,
) -> Result<Api<DynamicObject>> {
    let namespace = resource["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    Ok(Api::namespaced_with(
        harness.client(),
        namespace,
        &served.resource.resource(),
    ))
}

/// `n` resources converge under the faults of seed `seed`, each with exactly its children.
/// Returns the harness with the faults still on, for an operator's own checks after it.
pub async fn converge_under_faults(subject: &Subject, n: usize, seed: u64) -> Result<Harness> {
    // A quick backoff and a slow resync: the faults, not the timers, set the pace.
    let settings = ControllerSettings {
        resync: Duration::from_secs(5),
        concurrency: 8,
        backoff: Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_secs(2),
            jitter: 0.2,
        },
        namespace: None,
    };
    let mut harness = (subject.harness)().settings(settings).prepare().await?;
    subject.create(&harness, n).await?;
    harness.server.reset_stats();
    harness.server.set_faults(Faults::chaos(seed));
    harness.start_operator();
    until(&format!("{n} converged under faults"), UNDER_FAULTS, || {
        subject.converged(&harness) == n
    })
    .await?;
    let faulted: u64 = harness.server.stats().by.values().map(|c| c.faulted).sum();
    ensure!(faulted > 0, "no fault fired");
    subject.assert_children_exact(&harness, n)?;
    Ok(harness)
}

/// What converging `n` resources under faults cost, checked: fewer than `budget` requests
/// per resource (backoff keeps retries bounded), and more than 100 faults fired (fewer and
/// the test proved little). `unit` names one resource in the messages.
pub fn cost_under_faults(harness: &Harness, n: usize, budget: f64, unit: &str) -> Result<()> {
    let stats = harness.server.stats();
    let per_resource = stats.total() as f64 / n as f64;
    let faulted: u64 = stats.by.values().map(|c| c.faulted).sum();
    eprintln!(
        "converged under faults: {per_resource:.1} requests per {unit}, {faulted} faulted, {} writes",
        stats.writes()
    );
    ensure!(
        per_resource < budget,
        "{per_resource:.1} requests per {unit} under faults (budget {budget}): {stats:?}"
    );
    ensure!(faulted > 100, "only {faulted} faults fired");
    Ok(())
}

/// 100 resources converge under faults with nothing duplicated or orphaned.
pub async fn converges_under_faults(subject: &Subject) -> Result<()> {
    let mut harness = converge_under_faults(subject, 100, 11).await?;
    harness.server.set_faults(Faults::default());
    harness.stop_operator().await
}

/// An operator killed in the middle of convergence leaves nothing its successor has to
/// write again: what the first applied keeps its resourceVersion.
pub async fn crash_mid_convergence_rewrites_nothing(subject: &Subject) -> Result<()> {
    let n = 60;
    let mut harness = (subject.harness)().prepare().await?;
    subject.create(&harness, n).await?;
    harness.start_operator();
    until("a third converged", CONVERGE, || {
        subject.converged(&harness) >= n / 3
    })
    .await?;
    harness.crash_operator().await;
    let before: BTreeMap<String, Value> = subject
        .managed(&harness, n)
        .into_iter()
        .filter(|(key, _)| {
            !subject
                .written_by_others
                .iter()
                .any(|p| key.starts_with(&format!("{p}/")))
        })
        .collect();

    harness.start_operator();
    until("all converged after the restart", CONVERGE, || {
        subject.converged(&harness) == n
    })
    .await?;
    subject.assert_children_exact(&harness, n)?;
    let after = subject.managed(&harness, n);
    let rewritten: Vec<&String> = before
        .iter()
        .filter(|(key, was)| {
            after
                .get(*key)
                .is_some_and(|now| as_the_operator_wrote_it(now) != as_the_operator_wrote_it(was))
        })
        .map(|(key, _)| key)
        .collect();
    ensure!(
        rewritten.is_empty(),
        "rewritten after the restart: {rewritten:?}"
    );
    harness.stop_operator().await
}

/// A child without what other controllers write beside the operator: its status, and the
/// resourceVersion and field-manager entry a status write moves. The simulated CronJob
/// controller records `lastScheduleTime` when a schedule comes due mid-test: comparing
/// resourceVersions failed every run that crossed 02:00 UTC (PaymentService's default backup
/// schedule) though the operator wrote nothing.
fn as_the_operator_wrote_it(child: &Value) -> Value {
    let mut child = child.clone();
    if let Some(object) = child.as_object_mut() {
        object.remove("status");
    }
    if let Some(metadata) = child["metadata"].as_object_mut() {
        metadata.remove("resourceVersion");
        if let Some(Value::Array(entries)) = metadata.get_mut("managedFields") {
            entries.retain(|e| e["subresource"] != "status");
        }
    }
    child
}

/// A cluster with resources `0..n` converged, without faults.
async fn converged(subject: &Subject, n: usize) -> Result<Harness> {
    let harness = (subject.harness)().start().await?;
    subject.create(&harness, n).await?;
    until("all converged", CONVERGE, || {
        subject.converged(&harness) == n
    })
    .await?;
    Ok(harness)
}

/// Once everything has converged, reconciling it again (the resync) writes nothing: no
/// apply, no status, no event.
pub async fn converged_resync_writes_nothing(subject: &Subject) -> Result<()> {
    let n = 20;
    let mut harness = converged(subject, n).await?;
    // Let the last status writes and events of convergence land.
    tokio::time::sleep(Duration::from_secs(1)).await;
    harness.server.reset_stats();
    // Several resync intervals of the harness (300 ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = harness.server.stats();
    ensure!(
        stats.writes() == 0,
        "a converged resync wrote {} times: {:?}",
        stats.writes(),
        stats
            .by
            .iter()
            .filter(|((verb, _), c)| verb.is_write() && c.requests > 0)
            .collect::<Vec<_>>()
    );
    harness.stop_operator().await
}

/// A paused resource (`payments.io/paused: "true"`, [`operator_core::pause`]) says so in
/// status, and a spec change reaches none of its children while it stays paused; removing
/// the annotation applies the change and drops the condition; deleting a paused resource
/// still runs its finalizer.
pub async fn a_paused_resource_gets_no_child_writes(subject: &Subject) -> Result<()> {
    let mut harness = converged(subject, 3).await?;
    let kind = subject.served()?.resource.resource();
    let resource = (subject.resource)(0);
    let name = crate::name_of(&resource);
    let namespace = resource["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let patch = |patch: Value| {
        harness
            .server
            .merge_patch(&kind.api_version, &kind.plural, namespace, &name, patch)
    };
    let paused = || {
        harness
            .server
            .object(&kind.api_version, &kind.plural, namespace, &name)
            .and_then(|o| {
                o["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .find(|c| c["type"] == PAUSED)
                    .map(|c| c["status"].clone())
            })
    };
    let annotate =
        |value: Value| patch(json!({"metadata": {"annotations": {PAUSE_ANNOTATION: value}}}));
    annotate(json!("true"))?;
    until("Paused=True in status", CONVERGE, || {
        paused() == Some(json!("True"))
    })
    .await?;

    let change = subject.operator.bench.change;
    let target = change.first_target;
    let child = (change.child)(&name);
    let shown = || {
        harness
            .server
            .object(child.api_version, child.plural, namespace, &child.name)
            .is_some_and(|c| (change.shown)(&c, target))
    };
    harness.server.reset_stats();
    patch((change.patch)(target))?;
    // Several resync intervals of the harness (300 ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = harness.server.stats();
    let child_writes: Vec<_> = stats
        .by
        .iter()
        .filter(|((verb, plural), c)| {
            verb.is_write() && c.requests > 0 && *plural != kind.plural && plural != "events"
        })
        .collect();
    ensure!(
        child_writes.is_empty(),
        "a paused resource's children were written: {child_writes:?}"
    );
    ensure!(
        !shown(),
        "the spec change reached {}/{} while paused",
        child.plural,
        child.name
    );

    annotate(Value::Null)?;
    until("the change applied once resumed", CONVERGE, shown).await?;
    until("Paused gone from status", CONVERGE, || paused().is_none()).await?;

    // Deleting a paused resource still runs its finalizer: a pause never holds up a
    // namespace's deletion.
    annotate(json!("true"))?;
    until("Paused=True again", CONVERGE, || {
        paused() == Some(json!("True"))
    })
    .await?;
    subject
        .api_for(&harness, &resource)?
        .delete(&name, &DeleteParams::default())
        .await?;
    until("the paused resource gone", CONVERGE, || {
        subject.resources(&harness).is_ok_and(|r| r.len() == 2)
    })
    .await?;
    harness.stop_operator().await
}

/// Every pod the children would start runs under the restricted Pod Security Standard and
/// OpenShift's `restricted-v2` SCC ([`crate::pod_security::restricted_violations`]).
pub async fn every_pod_is_restricted(subject: &Subject) -> Result<()> {
    let mut harness = converged(subject, 3).await?;
    let mut templates = 0;
    for (api_version, plural, path) in crate::pod_security::POD_TEMPLATES {
        for child in harness.server.objects(api_version, plural) {
            let Some(pod) = child.pointer(path) else {
                continue;
            };
            templates += 1;
            let violations = crate::pod_security::restricted_violations(pod);
            ensure!(
                violations.is_empty(),
                "{plural}/{}: {violations:?}",
                crate::name_of(&child)
            );
        }
    }
    ensure!(templates > 0, "no child starts a pod");
    harness.stop_operator().await
}

/// Deleting every resource removes every child, except what the operator keeps on purpose,
/// which is released (no owner left to delete it with).
pub async fn deletion_leaves_nothing_behind(subject: &Subject) -> Result<()> {
    let n = 20;
    let mut harness = converged(subject, n).await?;
    let resources = subject.resources(&harness)?;
    let kept: BTreeSet<String> = resources
        .iter()
        .flat_map(|r| (subject.kept_after_deletion)(&crate::name_of(r), r))
        .map(|c| format!("{}/{}", c.plural, c.name))
        .collect();
    let served = subject.served()?;
    for resource in &resources {
        let name = resource["metadata"]["name"].as_str().unwrap_or_default();
        dynamic_api(&harness, served, resource)?
            .delete(name, &DeleteParams::default())
            .await?;
    }
    until("every resource gone", CONVERGE, || {
        subject.resources(&harness).is_ok_and(|r| r.is_empty())
    })
    .await?;
    until("every child gone", CONVERGE, || {
        subject
            .managed(&harness, n)
            .keys()
            .all(|k| kept.contains(k))
    })
    .await?;
    let managed = subject.managed(&harness, n);
    for key in &kept {
        let object = managed.get(key);
        ensure!(object.is_some(), "{key} was to be kept");
        ensure!(
            object.is_some_and(|o| o["metadata"]["ownerReferences"].is_null()),
            "{key} is kept but still owned"
        );
    }
    harness.stop_operator().await
}

/// Another team's object with a child's name is never touched ([`crate::foreign`]), on
/// testkit.
pub async fn another_teams_objects_are_never_touched(subject: &Subject) -> Result<()> {
    let mut harness = (subject.harness)().prepare().await?;
    harness.start_operator();
    let probe = (subject.resource)(0);
    crate::foreign::foreign_objects_are_never_touched(
        &harness.client(),
        subject.operator,
        probe.clone(),
        &(subject.used_as_found)(&crate::name_of(&probe), &probe),
        CONVERGE,
    )
    .await?;
    harness.stop_operator().await
}

/// The conformance checks as tests of the calling crate, for `subject` (a [`Subject`]).
#[macro_export]
macro_rules! conformance_tests {
    ($subject:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_converges_under_faults_with_nothing_duplicated_or_orphaned()
        -> anyhow::Result<()> {
            $crate::conformance::converges_under_faults(&$subject).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_a_crash_mid_convergence_leaves_nothing_to_rewrite()
        -> anyhow::Result<()> {
            $crate::conformance::crash_mid_convergence_rewrites_nothing(&$subject).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_a_converged_resync_writes_nothing() -> anyhow::Result<()> {
            $crate::conformance::converged_resync_writes_nothing(&$subject).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_another_teams_objects_are_never_touched() -> anyhow::Result<()> {
            $crate::conformance::another_teams_objects_are_never_touched(&$subject).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_a_paused_resource_gets_no_child_writes() -> anyhow::Result<()> {
            $crate::conformance::a_paused_resource_gets_no_child_writes(&$subject).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_every_pod_is_restricted() -> anyhow::Result<()> {
            $crate::conformance::every_pod_is_restricted(&$subject).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_deletion_leaves_nothing_behind() -> anyhow::Result<()> {
            $crate::conformance::deletion_leaves_nothing_behind(&$subject).await
        }
    };
}
