//! `gitops-cleanup`: deletes finished Jobs (and their Pods) after their retention period,
//! optionally finished orphan Pods and Pods stuck terminating, and authentik objects this
//! product created that no ProxyConfig claims any more.

use std::process::ExitCode;

mod config;
mod controller;
mod error;
mod events;
mod job_summary;
mod jobs;
mod metrics;
mod orphans;
mod pods;
mod policy;
mod throttle;

#[tokio::main]
async fn main() -> ExitCode {
    match gitops_runtime::start::<config::Args>(|args| &args.process) {
        Ok(args) => gitops_runtime::finish("gitops-cleanup", controller::run(args).await),
        Err(code) => code,
    }
}
