//! The CRD attributes as an operator writes them: `custom_resource` with `api = "group/version"`
//! and the status type named for the kind, `resource_status` adding the standard fields.

use kube::CustomResourceExt;
use operator_core::status::ReportedStatus;
use serde_json::json;

#[operator_core::custom_resource(api = "example.io/v2", kind = "Gadget", shortname = "gd")]
pub struct GadgetSpec {
    pub size: i32,
}

#[operator_core::schema(Copy)]
pub enum GadgetPhase {
    Running,
}

#[operator_core::resource_status(phase = GadgetPhase, conditions = "Ready, and Polished.")]
pub struct GadgetStatus {
    /// Gadgets built.
    pub built: Option<i32>,
}

#[test]
fn api_names_group_and_version_and_the_status_is_named_for_the_kind() {
    let crd = Gadget::crd();
    assert_eq!(crd.spec.group, "example.io");
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v2");
    assert_eq!(crd.spec.scope, "Namespaced");
    let columns = version
        .additional_printer_columns
        .as_ref()
        .expect("columns");
    assert_eq!(columns.last().map(|c| c.name.as_str()), Some("Age"));
    assert!(
        version
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some())
    );

    let schema = serde_json::to_value(&version.schema).expect("schema");
    let status = &schema["openAPIV3Schema"]["properties"]["status"]["properties"];
    assert_eq!(status["built"]["description"], "Gadgets built.");
    assert_eq!(status["phase"]["description"], "Lifecycle phase.");
    assert_eq!(status["conditions"]["description"], "Ready, and Polished.");
    assert_eq!(
        status["observedGeneration"]["description"],
        "The generation of the spec this status describes."
    );
}

#[test]
fn the_standard_fields_serialize_in_camel_case_and_are_left_out_when_empty() {
    let mut status = GadgetStatus::default();
    assert_eq!(serde_json::to_value(&status).expect("json"), json!({}));
    status.set_phase(Some(GadgetPhase::Running));
    status.set_observed_generation(Some(3));
    status.built = Some(1);
    assert_eq!(status.phase(), Some(GadgetPhase::Running));
    assert_eq!(
        serde_json::to_value(&status).expect("json"),
        json!({"phase": "Running", "observedGeneration": 3, "built": 1})
    );
}
