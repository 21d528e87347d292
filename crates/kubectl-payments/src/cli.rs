//! The command line: subcommands, their arguments and flags. Kept in the library so shell
//! completion ([`crate::complete`]) reads the same definition the parser uses.

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "kubectl payments",
    about = "The payments operators' resources, and pausing one"
)]
pub struct Cli {
    /// The namespace (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Gives up on a PaymentService's rollout in progress and goes back to the serving
    /// version (ps/NAME; annotation payments.io/abort).
    Abort(Target),
    /// Takes a banking partner of a ClearingAdapter out of its routing table (weight 0)
    /// until it is restored (ca/NAME PARTNER; annotation payments.io/drain-partners).
    Drain(PartnerTarget),
    /// Starts a run of a BatchProcessor now (bp/NAME; annotation payments.io/run-now).
    RunNow(Target),
    /// Lifts a TradingAlgorithm's risk halt (ta/NAME; annotation fintech.io/resume-trading).
    ResumeTrading(Target),
    /// Writes the five CRDs, every resource of the five kinds (in the namespace, or all with
    /// -A), the namespaces and the operators' config and RBAC into a directory, with a
    /// manifest. Secrets are never exported, only named.
    Backup {
        /// In every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// The directory to write (created; its backup files are replaced).
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// `restore ca/NAME PARTNER`: gives a partner drained by hand its weight back.
    /// `restore DIR`: applies a backup again in its order (CRDs, namespaces, operators,
    /// resources) and names the Secrets it needs that do not exist.
    Restore(RestoreArgs),
    /// Prints the file that gives `kubectl payments` shell completion: save it as an
    /// executable named kubectl_complete-payments on PATH (kubectl 1.26 or later runs it).
    Completion,
}

#[derive(Args, Debug)]
pub struct Target {
    /// KIND/NAME, KIND as kubectl names it (ps, paymentservice, PaymentService).
    pub target: String,
    /// Seconds to wait for the operator's answer.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub struct PartnerTarget {
    /// ca/NAME (or clearingadapter/NAME).
    pub target: String,
    /// The partner's name, as the adapter's spec.config.bankingPartners names it.
    pub partner: String,
    /// Seconds to wait for the operator's answer.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// ca/NAME PARTNER, or the directory `backup` wrote.
    #[arg(num_args = 1..=2, required = true)]
    pub what: Vec<String>,
    /// With a backup: has the API server check every object, and says what would change.
    #[arg(long)]
    pub dry_run: bool,
    /// With a partner: seconds to wait for the operator's answer.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}
