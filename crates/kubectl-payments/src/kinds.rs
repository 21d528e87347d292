//! The five kinds, as their operators' descriptors serve them, and `KIND/NAME` as a user
//! types it (`ps/x`, `paymentservice/x`, `PaymentService/x`, `paymentservices/x`).

use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use operator_core::OperatorDescriptor;

use crate::CliError;

/// The operators whose kinds this tool knows, in the order `status` lists them.
pub const OPERATORS: [&OperatorDescriptor; 5] = [
    &payment_service::OPERATOR,
    &batch_processor::OPERATOR,
    &clearing_adapter::OPERATOR,
    &saga_orchestrator::OPERATOR,
    &trading_algorithm::OPERATOR,
];

/// One kind: how the API server serves it, and its short name.
#[derive(Clone, Debug)]
pub struct Kind {
    pub resource: ApiResource,
    pub short_name: String,
}

impl Kind {
    /// Its objects in `namespace`, or in every namespace with `None`.
    pub fn api(&self, client: &Client, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource),
            None => Api::all_with(client.clone(), &self.resource),
        }
    }

    fn answers_to(&self, word: &str) -> bool {
        let word = word.to_ascii_lowercase();
        word == self.short_name
            || word == self.resource.plural
            || word == self.resource.kind.to_ascii_lowercase()
    }
}

/// Every kind, each as its operator serves it (the stored version).
pub fn all() -> Vec<Kind> {
    OPERATORS
        .iter()
        .filter_map(|o| o.resources.first())
        .map(|served| Kind {
            resource: served.resource.resource(),
            short_name: served.resource.short_name(),
        })
        .collect()
}

/// `KIND/NAME` → the kind and the name.
pub fn target(text: &str) -> Result<(Kind, String), CliError> {
    let known = || {
        all()
            .iter()
            .map(|k| format!("{} ({})", k.resource.kind, k.short_name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (word, name) = text
        .split_once('/')
        .filter(|(_, name)| !name.is_empty())
        .ok_or_else(|| CliError::UnknownTarget(text.into(), known()))?;
    let kind = all()
        .into_iter()
        .find(|k| k.answers_to(word))
        .ok_or_else(|| CliError::UnknownTarget(text.into(), known()))?;
    Ok((kind, name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_named_as_kubectl_names_it() {
        for text in [
            "ps/a",
            "paymentservice/a",
            "PaymentService/a",
            "paymentservices/a",
        ] {
            let (kind, name) = target(text).unwrap();
            assert_eq!(
                (kind.resource.kind.as_str(), name.as_str()),
                ("PaymentService", "a")
            );
        }
        assert_eq!(target("ta/x").unwrap().0.resource.group, "fintech.io");
        assert_eq!(target("bp/x").unwrap().0.resource.kind, "BatchProcessor");
    }

    #[test]
    fn an_unknown_kind_or_a_missing_name_says_what_is_known() {
        for text in ["deployment/a", "ps", "ps/"] {
            let error = target(text).unwrap_err().to_string();
            assert!(error.contains("ClearingAdapter (ca)"), "{error}");
        }
    }

    #[test]
    fn all_five_kinds_are_known() {
        let kinds: Vec<String> = all().into_iter().map(|k| k.resource.kind).collect();
        assert_eq!(
            kinds,
            [
                "PaymentService",
                "BatchProcessor",
                "ClearingAdapter",
                "SagaOrchestrator",
                "TradingAlgorithm"
            ]
        );
    }
}
