//! `kubectl payments`: see the library's documentation.

use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use kubectl_payments::cli::{Cli, Command, Output, PartnerTarget, Target};
use kubectl_payments::{
    CliError, actions, backup, complete, drain, kinds, pause, request, restore, status, why,
};

#[tokio::main]
async fn main() {
    // kubectl's completion (`kubectl_complete-payments`) hands over the words as typed,
    // flags and all: they are read as words, not parsed as this command's own arguments.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some((first, words)) = args.split_first()
        && first == complete::COMPLETE_COMMAND
    {
        let client = kube::Client::try_default().await.ok();
        print!(
            "{}",
            complete::answer(complete::want(words), client)
                .await
                .render()
        );
        return;
    }
    // The error alone, as kubectl prints one: a user has no use for a backtrace.
    if let Err(error) = run(Cli::parse()).await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    if let Command::Completion = cli.command {
        print!("{}", complete::SCRIPT);
        return Ok(());
    }
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
        Command::Abort(target) => request(&client, &namespace, target, Action::Abort).await?,
        Command::Backup { all_namespaces, to } => {
            let scope = (!all_namespaces).then_some(namespace.as_str());
            let manifest = backup::backup(&client, scope, &to).await?;
            for (file, count) in &manifest.objects {
                println!("{}: {count} object(s)", to.join(file).display());
            }
            for secret in &manifest.secrets_referenced {
                println!("not exported, keep it elsewhere: Secret {secret}");
            }
        }
        Command::Restore(args) => match args.what.as_slice() {
            [target, partner_name] => {
                let target = PartnerTarget {
                    target: target.clone(),
                    partner: partner_name.clone(),
                    timeout: args.timeout,
                };
                partner(&client, &namespace, target, false).await?;
            }
            [from, ..] => {
                let from = std::path::Path::new(from);
                for line in restore::restore(&client, from, args.dry_run).await? {
                    println!("{line}");
                }
            }
            [] => {}
        },
        Command::Drain(target) => partner(&client, &namespace, target, true).await?,
        Command::RunNow(target) => request(&client, &namespace, target, Action::RunNow).await?,
        Command::ResumeTrading(target) => {
            request(&client, &namespace, target, Action::ResumeTrading).await?;
        }
        // Answered above, before a cluster is needed.
        Command::Completion => {}
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Pause,
    Resume,
    Promote,
    Abort,
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
        Action::Abort => actions::abort(client, on, wait).await?,
        Action::RunNow => actions::run_now(client, on, wait).await?,
        Action::ResumeTrading => actions::resume_trading(client, on, wait).await?,
    };
    println!("{}/{name}: {answer}", kind.resource.kind);
    Ok(())
}

/// Drains or restores one partner of a ClearingAdapter and prints the operator's answer.
async fn partner(
    client: &kube::Client,
    namespace: &str,
    target: PartnerTarget,
    drained: bool,
) -> Result<()> {
    let (kind, name) = kinds::target(&target.target)?;
    let on = request::Target {
        kind: &kind,
        namespace,
        name: &name,
    };
    let wait = Duration::from_secs(target.timeout);
    let answer = drain::set(client, on, &target.partner, drained, wait).await?;
    println!("{}/{name}: {answer}", kind.resource.kind);
    Ok(())
}
