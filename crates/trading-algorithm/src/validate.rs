//! The admission rules for a `TradingAlgorithm`: everything the CRD schema and its CEL rule
//! check, and what only the operator knows (names that must fit its children, parameter keys
//! that must be ConfigMap keys). The reconcile applies them before touching anything, so a
//! spec that got past admission (an older CRD, a cluster without CEL) is still refused with
//! every bad field named, and nothing is applied.

use std::sync::LazyLock;

use operator_core::FieldError;
use operator_core::validation::{self, FieldErrors, SpecRules};
use regex::Regex;

use crate::crd::TradingAlgorithmSpec;
use crate::resources::deployment::parameter_env_name;

static CONFIGMAP_KEY: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[-._a-zA-Z0-9]+$").ok());

/// The longest suffix a child adds to the algorithm's name (`<name>-deployment`).
const LONGEST_CHILD_SUFFIX: &str = "-deployment";

impl SpecRules for TradingAlgorithmSpec {
    /// Every problem with a resource's name and spec; empty when it can be realised.
    fn errors(&self, name: &str) -> Vec<FieldError> {
        let mut errors = FieldErrors::for_resource(name, LONGEST_CHILD_SUFFIX);

        let md = &self.market_data;
        errors.check(
            !md.sources.is_empty(),
            "spec.marketData.sources",
            "must name at least one source",
        );
        for (i, source) in md.sources.iter().enumerate() {
            errors.check(
                !source.trim().is_empty(),
                &format!("spec.marketData.sources[{i}]"),
                "must not be empty",
            );
        }
        errors.push(
            "spec.marketData.updateFrequency",
            validation::duration(&md.update_frequency, &["ms", "s", "m"]),
        );
        for (i, symbol) in md.symbols.iter().flatten().enumerate() {
            errors.check(
                !symbol.trim().is_empty() && !symbol.contains(','),
                &format!("spec.marketData.symbols[{i}]"),
                format!("must be a symbol without commas, got {symbol:?}"),
            );
        }

        let risk = &self.risk_limits;
        errors.check(
            (1000..=10_000_000).contains(&risk.max_position_size),
            "spec.riskLimits.maxPositionSize",
            format!(
                "must be between 1000 and 10000000, got {}",
                risk.max_position_size
            ),
        );
        // An unbounded limit would switch the risk guard off without saying so.
        errors.check(
            (10_000..=100_000_000).contains(&risk.daily_loss_limit),
            "spec.riskLimits.dailyLossLimit",
            format!(
                "must be between 10000 and 100000000, got {}",
                risk.daily_loss_limit
            ),
        );
        if let Some(stop) = risk.stop_loss_percentage {
            errors.check(
                (0.01..=0.50).contains(&stop),
                "spec.riskLimits.stopLossPercentage",
                format!("must be between 0.01 and 0.50, got {stop}"),
            );
        }

        let scaling = &self.scaling_policy;
        errors.in_range(
            "spec.scalingPolicy.minReplicas",
            scaling.min_replicas,
            1..=10,
        );
        errors.in_range(
            "spec.scalingPolicy.maxReplicas",
            scaling.max_replicas,
            1..=100,
        );
        errors.check(
            scaling.min_replicas <= scaling.max_replicas,
            "spec.scalingPolicy",
            format!(
                "minReplicas ({}) must be less than or equal to maxReplicas ({})",
                scaling.min_replicas, scaling.max_replicas
            ),
        );
        if let Some(target) = scaling.target_cpu_utilization {
            errors.in_range("spec.scalingPolicy.targetCPUUtilization", target, 10..=90);
        }

        let parameters = self
            .trading_strategy
            .as_ref()
            .and_then(|s| s.parameters.as_ref());
        let mut env_names = std::collections::BTreeMap::new();
        for key in parameters.into_iter().flat_map(|p| p.keys()) {
            errors.check(
                matches(&CONFIGMAP_KEY, key) && key.len() <= 200,
                &format!("spec.tradingStrategy.parameters.{key}"),
                "parameter names may hold only letters, digits, '-', '_' and '.' (at most 200)",
            );
            if let Some(other) = env_names.insert(parameter_env_name(key), key) {
                errors.check(
                    false,
                    &format!("spec.tradingStrategy.parameters.{key}"),
                    format!(
                        "arrives in the same environment variable as parameter {other:?}: rename one"
                    ),
                );
            }
        }
        if let Some(image) = &self.image {
            errors.push("spec.image", validation::image_reference(image));
        }
        if let Some(account) = &self.service_account_name {
            errors.push(
                "spec.serviceAccountName",
                validation::dns_subdomain(account),
            );
        }
        errors.into_vec()
    }

    /// Valid but risky: what the webhook answers with a warning that `kubectl` shows.
    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.risk_limits.stop_loss_percentage.is_none() {
            warnings.push(
                "spec.riskLimits.stopLossPercentage is not set: a losing position is closed only when the daily loss limit halts trading"
                    .to_string(),
            );
        }
        warnings
    }
}

fn matches(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::sample_spec;
    use operator_core::validation::fields;

    #[test]
    fn the_seed_samples_are_valid() {
        assert!(sample_spec().errors("momentum-trader-prod").is_empty());
    }

    #[test]
    fn the_issues_invalid_specs_name_their_field() {
        let mut spec = sample_spec();
        spec.market_data.sources.clear();
        spec.market_data.update_frequency = "5h".into();
        spec.risk_limits.max_position_size = 500;
        spec.scaling_policy.min_replicas = 9;
        spec.scaling_policy.max_replicas = 3;
        let errors = spec.errors("x");
        assert_eq!(
            fields(&errors),
            vec![
                "spec.marketData.sources",
                "spec.marketData.updateFrequency",
                "spec.riskLimits.maxPositionSize",
                "spec.scalingPolicy",
            ]
        );
        assert!(
            errors[2]
                .message
                .contains("between 1000 and 10000000, got 500")
        );
    }

    /// A limit so large it can never be reached would switch the risk guard off.
    #[test]
    fn the_daily_loss_limit_is_bounded_both_ways() {
        let mut spec = sample_spec();
        spec.risk_limits.daily_loss_limit = 999_999_999_999;
        let errors = spec.errors("x");
        assert_eq!(fields(&errors), vec!["spec.riskLimits.dailyLossLimit"]);
        assert!(errors[0].message.contains("between 10000 and 100000000"));
        spec.risk_limits.daily_loss_limit = 100_000_000;
        assert!(spec.errors("x").is_empty());
    }

    #[test]
    fn names_must_fit_the_children() {
        assert_eq!(
            fields(&sample_spec().errors(&"a".repeat(53))),
            vec!["metadata.name"]
        );
        assert!(sample_spec().errors(&"a".repeat(52)).is_empty());
        assert_eq!(
            fields(&sample_spec().errors("9lives")),
            vec!["metadata.name"]
        );
    }
}
