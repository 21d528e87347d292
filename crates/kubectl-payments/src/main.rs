//! `kubectl payments`: see the library's documentation.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kubectl_payments::{CliError, actions, kinds, pause, request, status, why};

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
    /// Switches a PaymentService's held blue-green rollout to the version waiting for it
    /// (ps/NAME; annotation payments.io/promote).
    Promote(Target),
    /// Starts a run of a BatchProcessor now (bp/NAME; annotation payments.io/run-now).
    RunNow(Target),
    /// Lifts a TradingAlgorithm's risk halt (ta/NAME; annotation fintech.io/resume-trading).
    ResumeTrading(Target),
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
        Command::Pause(target) => request(&client, &namespace, target, Action::Pause).await?,
        Command::Resume(target) => request(&client, &namespace, target, Action::Resume).await?,
        Command::Promote(target) => request(&client, &namespace, target, Action::Promote).await?,
        Command::RunNow(target) => request(&client, &namespace, target, Action::RunNow).await?,
        Command::ResumeTrading(target) => {
            request(&client, &namespace, target, Action::ResumeTrading).await?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Pause,
    Resume,
    Promote,
    RunNow,
    ResumeTrading,
}

/// Makes one request of the operator and prints its answer.
async fn request(
    client: &kube::Client,
    namespace: &str,
    target: Target,
    action: Action,
) -> Result<()> {
    let (kind, name) = kinds::target(&target.target)?;
    let wait = Duration::from_secs(target.timeout);
    let on = request::Target {
        kind: &kind,
        namespace,
        name: &name,
    };
    let answer = match action {
        Action::Pause => pause::set(client, on, true, wait).await?,
        Action::Resume => pause::set(client, on, false, wait).await?,
        Action::Promote => actions::promote(client, on, wait).await?,
        Action::RunNow => actions::run_now(client, on, wait).await?,
        Action::ResumeTrading => actions::resume_trading(client, on, wait).await?,
    };
    println!("{}/{name}: {answer}", kind.resource.kind);
    Ok(())
}
