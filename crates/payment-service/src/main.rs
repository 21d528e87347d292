//! `payment-service-operator`: runs the PaymentService controller (flags: `--help`), or, as
//! `payment-service-operator backup …`, one run of a service's backup Job.

use payment_service::backup::Export;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Export::from_args(std::env::args_os().collect()) {
        Some(export) => {
            let done = export.run(kube::Client::try_default().await?).await?;
            println!(
                "exported {} with {} children to {}; removed {:?}",
                export.service,
                done.children,
                done.dir.display(),
                done.removed
            );
        }
        None => payment_service::OPERATOR.main().await?,
    }
    Ok(())
}
