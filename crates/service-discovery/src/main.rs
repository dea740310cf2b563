//! `gitops-service-discovery`: keeps authentik matching every ProxyConfig.

use std::process::ExitCode;

use clap::Parser;

mod authentik;
mod backoff;
mod config;
mod conflicts;
mod controller;
mod discovery;
mod error;
mod metrics;
mod outpost;
mod ownership;
mod reconciler;
mod status;

#[tokio::main]
async fn main() -> ExitCode {
    gitops_runtime::install_crypto_provider();
    let args = config::Args::parse();
    if let Err(error) = gitops_runtime::init_logging(args.log_format, &args.log_filter) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    match controller::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "gitops-service-discovery stopped with an error");
            ExitCode::FAILURE
        }
    }
}
