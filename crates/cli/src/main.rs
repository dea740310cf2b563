//! `kubectl gitops`: the operator CLI of gitops-lifecycle-management. Installed on `PATH` as
//! `kubectl-gitops`, kubectl runs it as `kubectl gitops …`.
//!
//! Every command is gather (I/O) → evaluate (pure, unit-tested) → render (table or JSON).
//! Exit codes: 0 nothing wrong, 1 problems found, 2 could not check (bad flags, no kubeconfig,
//! cluster or authentik unreachable). Errors are one line on stderr, never a backtrace.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod authentik;
mod backup;
mod cluster;
mod consistency;
mod error;
mod health;
mod logs;
mod onboard;
mod output;
mod release;
mod report;
mod restore;
mod settings;
mod verify;

use args::{Cli, Command};

/// What a command found; errors (could not check) travel as `Err`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    ProblemsFound,
}

impl Outcome {
    pub fn from_problems(found: bool) -> Self {
        if found {
            Outcome::ProblemsFound
        } else {
            Outcome::Clean
        }
    }
}

/// Exit code when the check itself could not run.
const EXIT_COULD_NOT_CHECK: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    gitops_runtime::install_crypto_provider();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::ProblemsFound) => ExitCode::from(1),
        Err(error) => {
            eprintln!("kubectl-gitops: {}", one_line(&format!("{error:#}")));
            ExitCode::from(EXIT_COULD_NOT_CHECK)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let global = &cli.global;
    Ok(match &cli.command {
        Command::Health(args) => health::run(global, args).await?,
        Command::Verify => verify::run(global).await?,
        Command::Backup { dir } => backup::run(global, dir).await?,
        Command::Restore { dir, dry_run } => restore::run(global, dir, *dry_run).await?,
        Command::Onboard(args) => onboard::run(global, args).await?,
        Command::Report(args) => report::run(global, args).await?,
    })
}

/// clap's multi-line usage errors, as one line (help and version print as usual).
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    let rendered = error.render().to_string();
    let mut message = String::new();
    for line in rendered.lines().map(str::trim).filter(|line| {
        !line.is_empty() && !line.starts_with("Usage:") && !line.starts_with("For more information")
    }) {
        if !message.is_empty() {
            message.push_str(if message.ends_with(':') { " " } else { "; " });
        }
        message.push_str(line.trim_start_matches("error: "));
    }
    eprintln!(
        "kubectl-gitops: {} (see kubectl gitops --help)",
        one_line(&message)
    );
    ExitCode::from(EXIT_COULD_NOT_CHECK)
}

/// Messages from libraries may span lines; a CLI error is one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
