//! Versions: added beside the old ones, kept up to the history limit, never dropped while an
//! instance runs on them.

use super::*;
use crate::crd::tests_support::sample;

/// The sample's saga with its first step's timeout set to `timeout`: a new version each time.
fn saga_version(timeout: &str) -> Version {
    let mut saga = sample().spec.sagas[0].clone();
    saga.steps[0].timeout = timeout.into();
    render("payments", &saga)
}

/// The ConfigMap data a plan writes, read back as the next pass does.
fn written(plan: &DefinitionPlan) -> Held {
    let mut data = BTreeMap::from([(
        "index.json".to_string(),
        serde_json::to_string(&plan.index).unwrap_or_default(),
    )]);
    for v in &plan.versions {
        data.insert(v.key(), v.document.clone());
    }
    Held::from_data(&data)
}

/// Applies each timeout in turn as the saga's definition; returns the last plan.
fn history(timeouts: &[&str], in_flight: &InFlight, limit: usize) -> DefinitionPlan {
    let mut held = Held::default();
    let mut last = DefinitionPlan::default();
    for t in timeouts {
        last = plan(Some(vec![saga_version(t)]), &held, in_flight, limit, false);
        held = written(&last);
    }
    last
}

fn held_versions(plan: &DefinitionPlan) -> Vec<String> {
    plan.index.sagas["card-payment"].versions.clone()
}

#[test]
fn a_document_names_its_version_and_resolves_each_service() {
    let v = render("payments", &sample().spec.sagas[0]);
    let doc: Value = serde_json::from_str(&v.document).unwrap_or_default();
    assert_eq!(doc["version"], v.version.as_str());
    assert_eq!(doc["pivot"], "submit-to-clearing");
    assert_eq!(
        doc["steps"][1]["url"],
        "http://fraud-screening.payments.svc:8080"
    );
    assert_eq!(doc["steps"][3]["compensation"], Value::Null);
    assert_eq!(v.key(), format!("card-payment.{}.json", v.version));
    assert_eq!(
        render("payments", &sample().spec.sagas[0]),
        v,
        "the same definition, the same version"
    );
    assert_ne!(saga_version("9s").version, v.version);
}

#[test]
fn a_change_adds_a_version_and_keeps_the_old_ones_up_to_the_limit() {
    let none = InFlight::new();
    let p = history(&["1s", "2s"], &none, 3);
    assert_eq!(
        held_versions(&p),
        [saga_version("2s").version, saga_version("1s").version]
    );
    assert_eq!(p.added, [saga_version("2s").label()]);
    assert_eq!(p.active()["card-payment"], saga_version("2s").version);

    let p = history(&["1s", "2s", "3s", "4s", "5s"], &none, 3);
    let kept: Vec<String> = ["5s", "4s", "3s", "2s"]
        .iter()
        .map(|t| saga_version(t).version)
        .collect();
    assert_eq!(held_versions(&p), kept, "the current one and three older");
    assert_eq!(p.dropped, [saga_version("1s").label()]);
}

#[test]
fn a_version_with_instances_in_flight_is_never_dropped() {
    let oldest = saga_version("1s");
    let in_flight = InFlight::from([(("card-payment".to_string(), oldest.version.clone()), 2)]);
    let p = history(&["1s", "2s", "3s"], &in_flight, 1);
    assert_eq!(
        held_versions(&p),
        [
            saga_version("3s").version,
            saga_version("2s").version,
            oldest.version.clone()
        ]
    );
    assert_eq!(p.draining(&in_flight), [oldest.label()]);
    // Once it has finished, it goes.
    let held = written(&p);
    let p = plan(
        Some(vec![saga_version("3s")]),
        &held,
        &InFlight::new(),
        1,
        false,
    );
    assert_eq!(p.dropped, [oldest.label()]);
    assert!(p.draining(&InFlight::new()).is_empty());
}

#[test]
fn invalid_definitions_keep_the_last_valid_ones() {
    let p = history(&["1s", "2s"], &InFlight::new(), 3);
    let held = written(&p);
    let kept = plan(None, &held, &InFlight::new(), 3, false);
    assert_eq!(kept.index, p.index);
    assert_eq!(kept.versions, p.versions);
    assert!(kept.added.is_empty() && kept.dropped.is_empty());
    assert_eq!(kept.active_digest(), p.active_digest());
}

#[test]
fn a_saga_that_leaves_the_spec_stays_only_while_it_runs() {
    let p = history(&["1s", "2s"], &InFlight::new(), 3);
    let held = written(&p);
    let current = saga_version("2s");
    let in_flight = InFlight::from([(("card-payment".to_string(), current.version.clone()), 1)]);
    let gone = plan(Some(Vec::new()), &held, &in_flight, 3, false);
    assert_eq!(
        gone.index.sagas["card-payment"].current, None,
        "no new instance starts"
    );
    assert_eq!(
        gone.index.sagas["card-payment"].versions,
        std::slice::from_ref(&current.version)
    );
    assert_eq!(gone.dropped, [saga_version("1s").label()]);
    let finished = plan(
        Some(Vec::new()),
        &written(&gone),
        &InFlight::new(),
        3,
        false,
    );
    assert!(finished.index.sagas.is_empty());
}

#[test]
fn older_versions_do_not_move_the_pods_digest_but_a_new_current_does() {
    let p2 = history(&["1s", "2s"], &InFlight::new(), 3);
    let p2_dropped = history(&["1s", "2s"], &InFlight::new(), 0);
    assert_eq!(p2.active_digest(), p2_dropped.active_digest());
    assert_ne!(
        p2.active_digest(),
        history(&["1s", "3s"], &InFlight::new(), 3).active_digest()
    );
}

#[test]
fn in_flight_counts_are_read_and_bad_entries_named() {
    let data = BTreeMap::from([
        ("card-payment.3f2a9c1b".to_string(), "4".to_string()),
        ("refund.0badc0de".to_string(), "-1".to_string()),
        ("garbage".to_string(), "x".to_string()),
    ]);
    let (counts, unreadable) = read_in_flight(&data);
    assert_eq!(
        counts,
        InFlight::from([(("card-payment".into(), "3f2a9c1b".into()), 4)])
    );
    assert_eq!(unreadable, ["garbage", "refund.0badc0de"]);
}
