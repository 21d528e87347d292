//! The SagaOrchestrator operator binary.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    saga_orchestrator::OPERATOR.main().await?;
    Ok(())
}
