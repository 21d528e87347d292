//! `payment-service-operator`: runs the PaymentService controller (flags: `--help`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    payment_service::OPERATOR.main().await?;
    Ok(())
}
