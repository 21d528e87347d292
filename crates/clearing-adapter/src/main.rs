//! The ClearingAdapter operator binary.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    clearing_adapter::OPERATOR.main().await?;
    Ok(())
}
