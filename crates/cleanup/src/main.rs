//! `gitops-cleanup`: deletes finished Jobs (and their Pods) after their retention period,
//! optionally finished orphan Pods and Pods stuck terminating, and authentik objects this
//! product created that no ProxyConfig claims any more.

use std::process::ExitCode;

use clap::Parser;

mod config;
mod controller;
mod error;
mod events;
mod jobs;
mod metrics;
mod orphans;
mod pods;
mod policy;
mod throttle;

#[tokio::main]
async fn main() -> ExitCode {
    gitops_runtime::install_crypto_provider();
    let args = match config::Args::try_parse() {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => error.exit(), // --help, --version
        Err(error) => {
            // One line: which setting, and why. (clap adds a usage hint we leave out.)
            let rendered = error.to_string();
            eprintln!(
                "{}",
                rendered.lines().next().unwrap_or("error: invalid settings")
            );
            return ExitCode::from(2);
        }
    };
    if let Err(error) = gitops_runtime::init_logging(args.log_format, &args.log_filter) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    match controller::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "gitops-cleanup stopped with an error");
            ExitCode::FAILURE
        }
    }
}
