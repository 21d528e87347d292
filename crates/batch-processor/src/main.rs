//! The BatchProcessor operator binary.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    operator_core::runtime::main(&batch_processor::OPERATOR).await?;
    Ok(())
}
