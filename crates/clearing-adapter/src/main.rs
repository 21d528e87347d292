//! The ClearingAdapter operator binary.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    operator_core::runtime::main(&clearing_adapter::OPERATOR).await?;
    Ok(())
}
