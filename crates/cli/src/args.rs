//! Flags and subcommands.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-gitops",
    bin_name = "kubectl gitops",
    version,
    about = "Operate gitops-lifecycle-management: daily health check, consistency check against authentik, backup/restore, onboarding, weekly report",
    after_help = "Exit codes: 0 nothing wrong, 1 problems found, 2 could not check."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command understands.
#[derive(Debug, Args)]
pub struct Global {
    /// kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// kubeconfig context to use (default: the current context).
    #[arg(long, global = true)]
    pub context: Option<String>,

    /// Only ProxyConfigs (and Jobs) in this namespace; all namespaces when omitted. `onboard`:
    /// the Service's namespace (default: the context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,

    /// Helm release name of the installation.
    #[arg(long, global = true, default_value = "gitops-lifecycle-management")]
    pub release: String,

    /// Namespace of the Helm release and the controllers.
    #[arg(long, global = true, default_value = "flux-system")]
    pub release_namespace: String,

    /// authentik base URL, e.g. http://authentik-server.authentik.svc.cluster.local:9000.
    #[arg(long, global = true, env = "AUTHENTIK_HOST", value_name = "URL")]
    pub authentik_url: Option<String>,

    /// File holding the authentik API token. Otherwise the token is read from $AUTHENTIK_TOKEN;
    /// it is never accepted on the command line and never printed.
    #[arg(long, global = true, env = "AUTHENTIK_TOKEN_FILE", value_name = "PATH")]
    pub authentik_token_file: Option<PathBuf>,

    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daily check: release and Deployments ready, ProxyConfigs by phase, recent controller
    /// errors, authentik reachable, firing alerts. Exit 1 on any problem.
    Health(HealthArgs),
    /// ProxyConfigs against authentik: missing, drifted (field by field), not in their outpost,
    /// orphaned ownership records, foreign providers in our outposts; and routes that serve a
    /// ProxyConfig's host without forward auth. Read-only; exit 1 on any finding.
    Verify,
    /// Write ProxyConfigs (without status and server-set fields), ownership records, the CRDs,
    /// the release's Helm values and the PrometheusRule to DIR.
    Backup {
        /// Directory to write (created if missing).
        dir: PathBuf,
    },
    /// Server-side apply a backup: CRDs, then ownership records (only missing ones), then
    /// ProxyConfigs. Idempotent; every file is validated before anything is applied.
    Restore {
        /// Directory written by `kubectl gitops backup`.
        dir: PathBuf,
        /// Ask the API server what would change (dryRun=All); change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the ProxyConfig for a Service (derived like automatic onboarding), or apply it.
    Onboard(OnboardArgs),
    /// The weekly review: error patterns, non-Ready ProxyConfigs, cleanup effectiveness,
    /// authentik consistency counts. Exit 0 unless it could not check.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Prometheus base URL; when given, firing alerts whose `component` label contains
    /// `gitops` are problems.
    #[arg(long, env = "PROMETHEUS_URL", value_name = "URL")]
    pub prometheus_url: Option<String>,

    /// How far back controller logs are searched for errors.
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    pub since: Duration,
}

#[derive(Debug, Args)]
pub struct OnboardArgs {
    /// The Service to publish.
    pub service: String,

    /// Public host name (bare or https:// URL); overrides the Service's
    /// authentik.io/external-host annotation.
    #[arg(long)]
    pub host: String,

    /// Apply it (server-side apply, field manager kubectl-gitops) instead of printing it.
    #[arg(long)]
    pub apply: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// How far back controller logs are searched for error patterns.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    pub since: Duration,
}
