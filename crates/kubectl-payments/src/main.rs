//! `kubectl payments`: see the library's documentation.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kubectl_payments::{CliError, kinds, pause, status, why};

#[derive(Debug, Parser)]
#[command(
    name = "kubectl payments",
    about = "The payments operators' resources, and pausing one"
)]
struct Cli {
    /// The namespace (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every PaymentService, BatchProcessor, ClearingAdapter, SagaOrchestrator and
    /// TradingAlgorithm: Ready, phase, reason, what to do, the last Warning event.
    Status {
        /// In every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// One resource's conditions, recent events and children, and what to do.
    Why {
        /// KIND/NAME, KIND as kubectl names it (ps, paymentservice, PaymentService).
        target: String,
    },
    /// Stops the operator's writes to KIND/NAME's children (annotation payments.io/paused).
    Pause(Target),
    /// Lets the operator act on KIND/NAME again.
    Resume(Target),
}

#[derive(Args, Debug)]
struct Target {
    /// KIND/NAME, KIND as kubectl names it (ps, paymentservice, PaymentService).
    target: String,
    /// Seconds to wait for the operator's answer.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Table,
    Json,
    Yaml,
}

#[tokio::main]
async fn main() {
    // The error alone, as kubectl prints one: a user has no use for a backtrace.
    if let Err(error) = run(Cli::parse()).await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let client = kube::Client::try_default().await?;
    let namespace = cli
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    match cli.command {
        Command::Status {
            all_namespaces,
            output,
        } => {
            let scope = (!all_namespaces).then_some(namespace.as_str());
            let rows = status::rows(&client, scope).await?;
            let text = match output {
                Output::Table => status::table(&rows, all_namespaces),
                Output::Json => serde_json::to_string_pretty(&rows)? + "\n",
                Output::Yaml => {
                    serde_yaml::to_string(&rows).map_err(|e| CliError::Print(e.to_string()))?
                }
            };
            print!("{text}");
        }
        Command::Why { target } => {
            let (kind, name) = kinds::target(&target)?;
            print!("{}", why::explain(&client, &kind, &namespace, &name).await?);
        }
        Command::Pause(target) => toggle(&client, &namespace, target, true).await?,
        Command::Resume(target) => toggle(&client, &namespace, target, false).await?,
    }
    Ok(())
}

/// Pauses or resumes one resource and prints the operator's answer.
async fn toggle(
    client: &kube::Client,
    namespace: &str,
    target: Target,
    paused: bool,
) -> Result<()> {
    let (kind, name) = kinds::target(&target.target)?;
    let wait = Duration::from_secs(target.timeout);
    let answer = pause::set(client, &kind, namespace, &name, paused, wait).await?;
    println!("{}/{name}: {answer}", kind.resource.kind);
    Ok(())
}
