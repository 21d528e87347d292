//! `payment-service-operator`: runs the PaymentService controller (flags: `--help`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    operator_core::runtime::main(payment_service::BINARY, |rt| {
        payment_service::controllers(rt, payment_service::Options::default())
    })
    .await?;
    Ok(())
}
