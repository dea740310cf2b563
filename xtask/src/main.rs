//! `cargo xtask …`: the project's automation, one entry point.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod contract;
mod crd;
mod demo;
mod image;
mod proxy_types;
mod reliability;
mod run;
mod test;
mod testenv;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Project automation for gitops-lifecycle-management"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the product locally: test cluster, authentik double, both controllers, the examples;
    /// stays up until Ctrl-C.
    Demo {
        /// End after the report: exit 0 when everything converged, non-zero otherwise.
        #[arg(long)]
        exit_when_ready: bool,
        /// Run the controllers as Pods of the Helm chart on a test node (root; builds the
        /// images and the node's tools first).
        #[arg(long)]
        in_cluster: bool,
    },
    /// Generate the ProxyConfig CRD files from the Rust types and the Rust types of the
    /// third-party CRDs the controller writes (kopium), or check them with --check.
    Crd {
        /// Fail instead of writing when the committed files are out of date.
        #[arg(long)]
        check: bool,
    },
    /// Run every check and test: formatting, clippy with warnings denied, the pinned tools,
    /// one test environment for the run, all tests (the controller's end-to-end tests against
    /// the authentik double imitating the newest and the oldest supported release).
    Test {
        /// Run the controller's end-to-end tests against every supported authentik release.
        #[arg(long)]
        all_versions: bool,
    },
    /// Run a representative subset of the end-to-end tests in contract mode against an authentik
    /// double started as a separate process (a step of `cargo xtask test`); to run them against
    /// a real authentik, set GITOPS_TEST_AUTHENTIK_URL and _TOKEN and use `cargo test`.
    Contract,
    /// Build OCI images of both controllers and the authentik double (static binaries, crane)
    /// into target/images/: an OCI layout and an archive for `ctr images import` each.
    Image(image::Args),
    /// Build the pinned tools (tools.toml) from source into the cache, once per version, and
    /// print the paths of their binaries.
    Tools {
        /// Only these tools (tools.toml names, e.g. `crane helm`); default: all.
        names: Vec<String>,
    },
    /// The shared test environment: etcd + kube-apiserver + kube-controller-manager.
    Testenv {
        #[command(subcommand)]
        action: testenv::Action,
    },
    /// Run the reliability suite at a chosen scale (defaults: the long run).
    Chaos(reliability::ChaosArgs),
    /// Fuzz the authentik response parsers (cargo-fuzz on nightly).
    Fuzz {
        /// How long to fuzz.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Run the benchmarks (release binaries, test environment, authentik double): tables on
    /// stdout, JSON in target/bench/.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match cli.command {
        Command::Crd { check: false } => crd::write(&root),
        Command::Crd { check: true } => crd::drifted(&root).and_then(|drifted| {
            if drifted.is_empty() {
                Ok(())
            } else {
                anyhow::bail!("out of date: {drifted:?}; run `cargo xtask crd`")
            }
        }),
        Command::Demo {
            exit_when_ready,
            in_cluster,
        } => demo::run(
            &root,
            demo::Options {
                exit_when_ready,
                in_cluster,
            },
        ),
        Command::Test { all_versions } => test::run(&root, all_versions),
        Command::Contract => contract::standalone(&root),
        Command::Image(args) => image::run(&root, &args),
        Command::Tools { names } => testenv::tools(&names),
        Command::Testenv { action } => testenv::run(action),
        Command::Bench(args) => bench::run(&root, &args),
        Command::Chaos(args) => reliability::chaos(&root, &args),
        Command::Fuzz { seconds } => {
            reliability::fuzz(&root, reliability::FuzzBudget::Seconds(seconds))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root (xtask lives one level below it).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}
