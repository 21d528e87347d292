//! operator-harness's foreign-object check on the real control plane, as each operator's
//! scenario file runs it: another team's object with any of the sample's child names is never
//! changed, adopted, scaled, mounted, selected or deleted, on create, update and delete of a
//! resource, and the resource's status names it.

use std::time::Duration;

use anyhow::Result;
use e2e::TestNamespace;
use e2e::operator::OperatorProcess;
use operator_core::OperatorDescriptor;
use operator_core::tooling::ChildRef;
use serde_json::Value;

/// Runs the check with `probe` (a sample in `ns`) against the running `operator`, then checks
/// its log for RBAC denials and deletes the namespace.
pub async fn never_touched(
    ns: TestNamespace,
    operator: OperatorProcess,
    descriptor: &OperatorDescriptor,
    probe: Value,
    used_as_found: &[ChildRef],
) -> Result<()> {
    operator_harness::foreign::foreign_objects_are_never_touched(
        &ns.client,
        descriptor,
        probe,
        used_as_found,
        Duration::from_secs(180),
    )
    .await?;
    operator.assert_no_rbac_denials()?;
    ns.cleanup().await
}
