//! Each admission rule on its bad case, starting from the sample: the message names the
//! saga and the step.

use super::*;
use crate::crd::tests_support::sample;
use crate::crd::{HttpCall, HttpMethod};
use operator_harness::messages;

fn fields(errors: &[FieldError]) -> Vec<&str> {
    validation::fields(errors)
}

fn definitions(change: impl FnOnce(&mut Vec<SagaDefinition>)) -> Vec<FieldError> {
    let mut sagas = sample().spec.sagas;
    change(&mut sagas);
    validate_definitions(&sagas)
}

#[test]
fn the_sample_is_valid() {
    let spec = sample().spec;
    assert_eq!(spec.errors("payment-saga"), Vec::new());
    assert_eq!(validate_definitions(&spec.sagas), Vec::new());
}

#[test]
fn saga_names_are_unique() {
    let errors = definitions(|s| s.push(s[0].clone()));
    assert_eq!(fields(&errors), ["spec.sagas[1].name"]);
    assert!(messages(&errors).contains("saga \"card-payment\" is defined twice"));
}

#[test]
fn step_names_are_unique_within_a_saga() {
    let errors = definitions(|s| s[0].steps[1].name = "reserve-funds".into());
    assert_eq!(fields(&errors), ["spec.sagas[0].steps[1].name"]);
    assert!(messages(&errors).contains("saga \"card-payment\" step \"reserve-funds\""));
}

#[test]
fn a_saga_has_at_least_one_step() {
    let errors = definitions(|s| {
        s[0].steps.clear();
        s[0].pivot = None;
    });
    assert_eq!(fields(&errors), ["spec.sagas[0].steps"]);
}

#[test]
fn every_step_before_the_pivot_has_a_compensation() {
    let errors = definitions(|s| s[0].steps[2].compensation = None);
    assert_eq!(fields(&errors), ["spec.sagas[0].steps[2].compensation"]);
    assert!(
        messages(&errors)
            .contains("saga \"card-payment\" step \"post-to-ledger\" comes before the pivot")
    );
    // Without a pivot every step can be undone, the last one too.
    let errors = definitions(|s| s[0].pivot = None);
    assert_eq!(fields(&errors), ["spec.sagas[0].steps[3].compensation"]);
    // The pivot and what follows need none.
    let errors = definitions(|s| {
        s[0].steps[3].compensation = Some(HttpCall {
            method: HttpMethod::Post,
            path: "/x".into(),
        });
    });
    assert_eq!(errors, Vec::new());
}

#[test]
fn the_pivot_names_a_step() {
    let errors = definitions(|s| s[0].pivot = Some("settle".into()));
    assert!(
        fields(&errors).contains(&"spec.sagas[0].pivot"),
        "{errors:?}"
    );
    assert!(messages(&errors).contains("pivot \"settle\" is not one of its steps"));
}

#[test]
fn timeouts_parse_and_a_step_fits_in_its_saga() {
    let errors = definitions(|s| s[0].timeout = "2 minutes".into());
    assert_eq!(fields(&errors), ["spec.sagas[0].timeout"]);
    let errors = definitions(|s| s[0].steps[3].timeout = "5m".into());
    assert_eq!(fields(&errors), ["spec.sagas[0].steps[3].timeout"]);
    assert!(
        messages(&errors).contains("step \"submit-to-clearing\": timeout 5m exceeds the saga's 2m")
    );
}

#[test]
fn retry_bounds_are_sane() {
    let errors = definitions(|s| {
        s[0].steps[0].retry.max_attempts = 0;
        s[0].steps[1].retry.backoff = "1m".into();
    });
    assert_eq!(
        fields(&errors),
        [
            "spec.sagas[0].steps[0].retry.maxAttempts",
            "spec.sagas[0].steps[1].retry.backoff"
        ]
    );
}

#[test]
fn spec_level_rules_refuse_the_whole_spec() {
    let mut spec = sample().spec;
    spec.persistence.secret_name = "Bad_Name".into();
    spec.definition_history_limit = 0;
    spec.drain_timeout = "soon".into();
    assert_eq!(
        fields(&spec.errors("payment-saga")),
        [
            "spec.persistence.secretName",
            "spec.definitionHistoryLimit",
            "spec.drainTimeout"
        ]
    );
    assert_eq!(
        fields(&sample().spec.errors(&"a".repeat(60))),
        ["metadata.name"]
    );
}
