//! The admission checks every operator runs, as data: `tests/cases/admission.yaml` names the
//! operator's sample and lists changes to it that are refused (naming the field), admitted
//! with warnings, and defaulted; [`admission_tests!`](crate::admission_tests) turns the file
//! into tests. A new rule in `validate.rs` is a new entry there, not a new test.

use anyhow::{Context as _, Result};
use operator_core::OperatorDescriptor;
use serde::Deserialize;
use serde_json::Value;

use super::AdmissionHarness;

/// An operator's `tests/cases/admission.yaml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdmissionCases {
    /// `deploy/samples/<sample>.yaml`, whose object of `kind` every change is made to.
    pub sample: String,
    pub kind: String,
    /// A credential some change writes inline, which no answer may repeat.
    #[serde(default)]
    pub secret: Option<String>,
    /// Each breaks one rule; the refusal names `field`, on create and on update.
    pub refused: Vec<Change>,
    /// Each is admitted with exactly `warnings` (each warning starts with its entry).
    pub warned: Vec<Change>,
    /// Each is admitted and patched with exactly `defaults` added.
    pub defaulted: Vec<Change>,
}

/// A change to the sample: a merge patch (`null` removes a field), merged at the JSON
/// pointer `at` when given (an element of a list, which a merge patch cannot reach), else
/// into the whole object; and what the webhooks make of it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Change {
    #[serde(default)]
    pub at: Option<String>,
    pub change: Value,
    /// Refused: the field the refusal names.
    #[serde(default)]
    pub field: Option<String>,
    /// Warned: the start of each warning, in order.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Defaulted: what the patch adds to what was written, as a merge patch.
    #[serde(default)]
    pub defaults: Value,
}

impl Change {
    /// `sample` with the change applied.
    pub fn applied_to(&self, sample: &Value) -> Result<Value> {
        let mut object = sample.clone();
        let target = match &self.at {
            Some(pointer) => object
                .pointer_mut(pointer)
                .with_context(|| format!("{pointer} is not in the sample"))?,
            None => &mut object,
        };
        json_patch::merge(target, &self.change);
        Ok(object)
    }
}

impl AdmissionCases {
    pub fn parse(yaml: &str) -> Result<Self> {
        serde_yaml::from_str(yaml).context("tests/cases/admission.yaml")
    }

    async fn harness(&self, operator: &OperatorDescriptor) -> Result<(AdmissionHarness, Value)> {
        AdmissionHarness::with_sample(operator, &self.sample, &self.kind).await
    }

    /// The sample is admitted; each refused change is refused on create and on update,
    /// naming its field in the causes and the message, and never repeating the secret.
    pub async fn check_refused(&self, operator: &OperatorDescriptor) -> Result<()> {
        let (webhook, sample) = self.harness(operator).await?;
        let allowed = webhook.validate("CREATE", &sample, None).await?;
        anyhow::ensure!(
            allowed.allowed,
            "the sample is refused: {}",
            allowed.message
        );
        for case in &self.refused {
            let object = case.applied_to(&sample)?;
            let change = &case.change;
            let field = case
                .field
                .as_deref()
                .context("a refused change names its field")?;
            for operation in ["CREATE", "UPDATE"] {
                let old = (operation == "UPDATE").then_some(&sample);
                let answer = webhook.validate(operation, &object, old).await?;
                anyhow::ensure!(!answer.allowed, "{operation} {change} was admitted");
                anyhow::ensure!(
                    answer.fields.iter().any(|f| f == field) && answer.message.contains(field),
                    "{change}: the refusal should name {field}, got {:?}: {}",
                    answer.fields,
                    answer.message
                );
                if let Some(secret) = &self.secret {
                    anyhow::ensure!(
                        !answer.message.contains(secret),
                        "a credential was repeated"
                    );
                }
            }
        }
        Ok(())
    }

    /// Each warned change is admitted with exactly its warnings, in order.
    pub async fn check_warned(&self, operator: &OperatorDescriptor) -> Result<()> {
        let (webhook, sample) = self.harness(operator).await?;
        for case in &self.warned {
            let answer = webhook
                .validate("CREATE", &case.applied_to(&sample)?, None)
                .await?;
            anyhow::ensure!(
                answer.allowed,
                "{} refused: {}",
                case.change,
                answer.message
            );
            let matches = answer.warnings.len() == case.warnings.len()
                && answer
                    .warnings
                    .iter()
                    .zip(&case.warnings)
                    .all(|(w, s)| w.starts_with(s));
            anyhow::ensure!(
                matches,
                "{}: expected warnings {:?}, got {:?}",
                case.change,
                case.warnings,
                answer.warnings
            );
        }
        Ok(())
    }

    /// Each defaulted change comes back from the mutating webhook with exactly its
    /// defaults added: nothing written is changed, nothing else is added.
    pub async fn check_defaulted(&self, operator: &OperatorDescriptor) -> Result<()> {
        let (webhook, sample) = self.harness(operator).await?;
        for case in &self.defaulted {
            let written = case.applied_to(&sample)?;
            let patched = webhook.defaulted(&written).await?;
            let expected = super::merged(&written, case.defaults.clone());
            let differences = differences(&patched, &expected, "");
            anyhow::ensure!(
                differences.is_empty(),
                "{}: the patched object differs at {differences:?}",
                case.change
            );
        }
        Ok(())
    }
}

/// The JSON pointers at which `found` and `expected` differ, each with both values.
fn differences(found: &Value, expected: &Value, at: &str) -> Vec<String> {
    match (found, expected) {
        (Value::Object(f), Value::Object(e)) => {
            let keys: std::collections::BTreeSet<&String> = f.keys().chain(e.keys()).collect();
            keys.into_iter()
                .flat_map(|k| {
                    let (f, e) = (&f.get(k), &e.get(k));
                    let null = Value::Null;
                    differences(f.unwrap_or(&null), e.unwrap_or(&null), &format!("{at}/{k}"))
                })
                .collect()
        }
        _ if found == expected => Vec::new(),
        _ => vec![format!("{at}: {found}, expected {expected}")],
    }
}

/// The admission tests of an operator from its `tests/cases/admission.yaml`: every refused
/// change refused naming its field, every warned change admitted with its warnings, every
/// defaulted change patched with exactly its defaults.
#[macro_export]
macro_rules! admission_tests {
    ($operator:expr) => {
        fn admission_cases() -> anyhow::Result<$crate::admission::AdmissionCases> {
            $crate::admission::AdmissionCases::parse(include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/cases/admission.yaml"
            )))
        }

        #[tokio::test]
        async fn admission_refuses_each_broken_rule_naming_its_field() -> anyhow::Result<()> {
            admission_cases()?.check_refused(&$operator).await
        }

        #[tokio::test]
        async fn admission_warns_of_each_risky_setting() -> anyhow::Result<()> {
            admission_cases()?.check_warned(&$operator).await
        }

        #[tokio::test]
        async fn admission_patches_in_defaults_and_keeps_what_is_written() -> anyhow::Result<()> {
            admission_cases()?.check_defaulted(&$operator).await
        }
    };
}
