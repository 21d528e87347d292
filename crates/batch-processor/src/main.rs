//! The BatchProcessor operator binary.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    batch_processor::OPERATOR.main().await?;
    Ok(())
}
