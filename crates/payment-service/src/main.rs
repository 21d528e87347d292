//! `payment-service-operator`: runs the PaymentService controller (flags: `--help`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    operator_core::runtime::main(&payment_service::OPERATOR).await?;
    Ok(())
}
