//! The SagaOrchestrator operator binary.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    operator_core::runtime::main(&saga_orchestrator::OPERATOR).await?;
    Ok(())
}
