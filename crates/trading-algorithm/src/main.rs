//! `trading-operator`: runs the TradingAlgorithm controller (flags: `--help`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    operator_core::runtime::main(&trading_algorithm::OPERATOR).await?;
    Ok(())
}
