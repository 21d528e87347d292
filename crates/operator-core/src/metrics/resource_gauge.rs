//! Per-resource domain gauges: one series per custom resource, labelled by namespace and
//! name (and at most one bounded label of the operator's, such as a partner or a state),
//! removed when the resource is gone. Labelling by name is allowed for these only, because
//! their series leave with the resource: [`Metrics::resource_gauge`] ties each gauge to its
//! controller's "gone" signal, so an operator writes no removal code of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kube::{Resource, ResourceExt};
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::Metrics;

/// A series' labels: the resource, and the operator's one label where the gauge has one.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct SeriesLabels {
    namespace: String,
    name: String,
    label: Option<(&'static str, String)>,
}

impl EncodeLabelSet for SeriesLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("namespace", self.namespace.as_str()).encode(encoder.encode_label())?;
        ("name", self.name.as_str()).encode(encoder.encode_label())?;
        if let Some((key, value)) = &self.label {
            (*key, value.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// `(namespace, name)` of a resource → the values of the gauge's own label it has series for.
type Known = BTreeMap<(String, String), BTreeSet<String>>;

/// A gauge of one value per resource `K`: `ResourceGauge<K>` counts, [`ResourceGaugeF64`]
/// measures.
#[derive(Debug)]
pub struct ResourceGauge<K, G = Gauge> {
    family: Family<SeriesLabels, G>,
    label: Option<&'static str>,
    known: Arc<Mutex<Known>>,
    resource: PhantomData<fn(&K)>,
}

impl<K, G> Clone for ResourceGauge<K, G> {
    fn clone(&self) -> Self {
        Self {
            family: self.family.clone(),
            label: self.label,
            known: self.known.clone(),
            resource: PhantomData,
        }
    }
}

/// A per-resource gauge of fractional values (P&L, seconds).
pub type ResourceGaugeF64<K> = ResourceGauge<K, Gauge<f64, std::sync::atomic::AtomicU64>>;

fn key_of(resource: &impl Resource) -> (String, String) {
    (
        resource.namespace().unwrap_or_default(),
        resource.name_any(),
    )
}

impl<K: Resource, G: Clone + Default> ResourceGauge<K, G> {
    fn known(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn labels(&self, (namespace, name): &(String, String), value: Option<&str>) -> SeriesLabels {
        SeriesLabels {
            namespace: namespace.clone(),
            name: name.clone(),
            label: self.label.zip(value.map(str::to_string)),
        }
    }

    /// The resource's series, created at its first use (`.set(…)` it).
    pub fn of(&self, resource: &K) -> G {
        let key = key_of(resource);
        self.known().entry(key.clone()).or_default();
        self.family.get_or_create_owned(&self.labels(&key, None))
    }

    /// The resource's series for one value of the gauge's own label.
    pub fn of_labelled(&self, resource: &K, value: &str) -> G {
        let key = key_of(resource);
        let labels = self.labels(&key, Some(value));
        self.known()
            .entry(key)
            .or_default()
            .insert(value.to_string());
        self.family.get_or_create_owned(&labels)
    }

    /// Removes the resource's series for one value of the gauge's own label.
    pub fn remove_labelled(&self, resource: &K, value: &str) {
        let key = key_of(resource);
        self.family.remove(&self.labels(&key, Some(value)));
        if let Some(values) = self.known().get_mut(&key) {
            values.remove(value);
        }
    }

    /// Keeps the resource's labelled series only for `values`: a partner taken out of the
    /// spec loses its series.
    pub fn retain_labelled<'a>(&self, resource: &K, values: impl IntoIterator<Item = &'a str>) {
        let keep: BTreeSet<&str> = values.into_iter().collect();
        let before = self
            .known()
            .get(&key_of(resource))
            .cloned()
            .unwrap_or_default();
        for gone in before.iter().filter(|v| !keep.contains(v.as_str())) {
            self.remove_labelled(resource, gone);
        }
    }

    /// Removes every series of the resource (it was deleted, or its metrics were turned off).
    pub fn forget(&self, resource: &K) {
        self.forget_named(&key_of(resource));
    }

    fn forget_named(&self, key: &(String, String)) {
        let values = self.known().remove(key).unwrap_or_default();
        self.family.remove(&self.labels(key, None));
        for value in values {
            self.family.remove(&self.labels(key, Some(&value)));
        }
    }
}

/// What a per-resource gauge's value type must be to be registered.
pub trait GaugeKind:
    Clone + Default + prometheus_client::registry::Metric + prometheus_client::metrics::TypedMetric
{
}

impl<G> GaugeKind for G where
    G: Clone
        + Default
        + prometheus_client::registry::Metric
        + prometheus_client::metrics::TypedMetric
{
}

impl Metrics {
    /// Registers a gauge with one series per resource `K`, removed when the resource is gone.
    pub fn resource_gauge<K, G>(&self, name: &str, help: &str) -> ResourceGauge<K, G>
    where
        K: Resource<DynamicType = ()> + 'static,
        G: GaugeKind,
    {
        self.gauge_with(name, help, None)
    }

    /// Registers a per-resource gauge with one more label, `label`, of bounded values.
    pub fn resource_gauge_by<K, G>(
        &self,
        name: &str,
        help: &str,
        label: &'static str,
    ) -> ResourceGauge<K, G>
    where
        K: Resource<DynamicType = ()> + 'static,
        G: GaugeKind,
    {
        self.gauge_with(name, help, Some(label))
    }

    fn gauge_with<K, G>(
        &self,
        name: &str,
        help: &str,
        label: Option<&'static str>,
    ) -> ResourceGauge<K, G>
    where
        K: Resource<DynamicType = ()> + 'static,
        G: GaugeKind,
    {
        let gauge = ResourceGauge {
            family: Family::default(),
            label,
            known: Arc::default(),
            resource: PhantomData,
        };
        self.register(name, help, gauge.family.clone());
        let gone = gauge.clone();
        self.on_resource_gone(K::kind(&()).to_lowercase(), move |namespace, name| {
            gone.forget_named(&(namespace.to_string(), name.to_string()));
        });
        gauge
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;
    use crate::metrics::ResourceLabels;

    fn resource(name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("payments".into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    fn gone(metrics: &Metrics, controller: &str, name: &str) {
        metrics.forget_resource(&ResourceLabels {
            controller: controller.into(),
            namespace: "payments".into(),
            name: name.into(),
        });
    }

    #[test]
    fn a_resources_series_leave_with_it_and_only_its_own() {
        let metrics = Metrics::new();
        let healthy: ResourceGauge<ConfigMap> =
            metrics.resource_gauge_by("partner_healthy", "h", "partner");
        let down: ResourceGauge<ConfigMap> = metrics.resource_gauge("all_down", "d");
        let (a, b) = (resource("a"), resource("b"));
        healthy.of_labelled(&a, "bank-1").set(1);
        healthy.of_labelled(&a, "bank-2").set(0);
        healthy.of_labelled(&b, "bank-1").set(1);
        down.of(&a).set(0);
        let text = metrics.encode();
        assert!(
            text.contains(r#"partner_healthy{namespace="payments",name="a",partner="bank-2"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"all_down{namespace="payments",name="a"} 0"#),
            "{text}"
        );

        gone(&metrics, "configmap", "a");
        let text = metrics.encode();
        assert!(!text.contains(r#"name="a""#), "{text}");
        assert!(
            text.contains(r#"partner_healthy{namespace="payments",name="b",partner="bank-1"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn another_kinds_resource_of_the_same_name_leaves_the_series_alone() {
        let metrics = Metrics::new();
        let pnl: ResourceGaugeF64<ConfigMap> = metrics.resource_gauge("daily_pnl", "p");
        pnl.of(&resource("a")).set(-12.5);
        gone(&metrics, "secret", "a");
        assert!(
            metrics
                .encode()
                .contains(r#"daily_pnl{namespace="payments",name="a"} -12.5"#)
        );
    }

    #[test]
    fn a_label_value_no_longer_wanted_loses_its_series() {
        let metrics = Metrics::new();
        let drained: ResourceGauge<ConfigMap> =
            metrics.resource_gauge_by("drained", "d", "partner");
        let a = resource("a");
        drained.of_labelled(&a, "bank-1").set(1);
        drained.of_labelled(&a, "bank-2").set(0);
        drained.retain_labelled(&a, ["bank-2"]);
        let text = metrics.encode();
        assert!(!text.contains("bank-1"), "{text}");
        assert!(text.contains("bank-2"), "{text}");
        drained.forget(&a);
        assert!(!metrics.encode().contains("bank-2"));
    }
}
