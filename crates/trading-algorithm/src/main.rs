//! `trading-operator`: runs the TradingAlgorithm controller (flags: `--help`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    trading_algorithm::OPERATOR.main().await?;
    Ok(())
}
