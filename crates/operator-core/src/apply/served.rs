//! The children a long-running, served workload runs on — its Deployment, Service and
//! NetworkPolicy, an autoscaler and a disruption budget when it has them, a ServiceMonitor
//! when it is scraped — applied in one order for every operator: the autoscaler's hand-over
//! before a Deployment leaves its replicas to it, the Deployment before what points at it.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Resource;

use super::kinds::{ChildPass, OptionalChild};
use crate::autoscaling::{HeldReplicas, hand_replicas_to_autoscaler};
use crate::error::Result;
use crate::monitoring::ServiceMonitor;

/// The desired children of a served workload.
#[derive(Clone, Debug, PartialEq)]
pub struct ServedWorkload {
    pub deployment: Deployment,
    pub service: Service,
    pub network_policy: NetworkPolicy,
    pub hpa: Option<HorizontalPodAutoscaler>,
    pub pdb: Option<PodDisruptionBudget>,
    /// Built when the workload is scraped; applied only where its CRD is installed.
    pub service_monitor: Option<ServiceMonitor>,
}

impl ServedWorkload {
    /// Every child but the ServiceMonitor (whose kind may not be served), as JSON: what a
    /// naive baseline writes on every pass.
    pub fn objects(&self) -> Vec<Result<serde_json::Value, serde_json::Error>> {
        use serde_json::to_value;
        let mut objects = vec![
            to_value(&self.deployment),
            to_value(&self.service),
            to_value(&self.network_policy),
        ];
        objects.extend(self.hpa.iter().map(to_value));
        objects.extend(self.pdb.iter().map(to_value));
        objects
    }
}

impl<O: Resource<DynamicType = ()>> ChildPass<'_, O> {
    /// Applies `workload`'s children in order, handing the `replicas` the operator holds
    /// (`held`, as observed) to the autoscaler first when the Deployment leaves them to it;
    /// returns what became of the ServiceMonitor.
    pub async fn apply_served(
        &mut self,
        workload: ServedWorkload,
        held: Option<&HeldReplicas>,
    ) -> Result<OptionalChild> {
        let deployments = self.api_beside_owner::<Deployment>();
        hand_replicas_to_autoscaler(&deployments, self.manager(), &workload.deployment, held)
            .await?;
        self.apply(workload.deployment).await?;
        self.apply(workload.service).await?;
        self.apply(workload.network_policy).await?;
        if let Some(hpa) = workload.hpa {
            self.apply(hpa).await?;
        }
        if let Some(pdb) = workload.pdb {
            self.apply(pdb).await?;
        }
        self.apply_optional(workload.service_monitor).await
    }
}
