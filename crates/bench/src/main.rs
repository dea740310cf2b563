//! `gitops-bench`: the benchmark scenarios of docs/benchmarks.md. Run through
//! `cargo xtask bench`, which builds the release binaries and provides a test environment;
//! never part of `cargo xtask test`.
//!
//! Each scenario starts the controllers as processes against the test API server (a fresh
//! namespace per measurement) and an in-process authentik double with injected latency,
//! prints a table and writes `target/bench/<scenario>.json`.

use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod apiserver;
mod authentik;
mod controller;
mod jobs;
mod procstat;
mod report;
mod scenarios;
mod setup;
mod stats;

use setup::Latency;

#[derive(Debug, Parser)]
#[command(name = "gitops-bench", about = "Benchmarks of the gitops controllers")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Object counts (repeat or comma-separate); each scenario has its own defaults.
    #[arg(long = "size", global = true, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// authentik double latency: milliseconds per request or `realistic` (repeatable).
    #[arg(long = "latency", global = true, value_delimiter = ',')]
    latencies: Vec<Latency>,
    /// Small sizes (100 objects, 20 samples): every scenario in about two minutes or less.
    #[arg(long, global = true)]
    quick: bool,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// 1: create → Ready latency of one ProxyConfig on an idle system.
    Single {
        /// Measured samples per latency (default 100, quick 20).
        #[arg(long)]
        samples: Option<usize>,
    },
    /// 2 + 7: bulk onboarding, with the naive sequential baseline at the same latency.
    Bulk {
        /// Seconds the naive baseline may run before the rest is extrapolated.
        #[arg(long)]
        baseline_budget: Option<u64>,
    },
    /// 3: converged ProxyConfigs over several resyncs.
    Steady {
        /// Shortened resync interval, seconds.
        #[arg(long, default_value_t = 10)]
        resync: u64,
        /// Resync periods measured.
        #[arg(long, default_value_t = 3)]
        periods: u32,
    },
    /// 4: kill and restart the service-discovery controller over converged ProxyConfigs.
    Restart,
    /// 5: peak and steady RSS of both controllers.
    Memory {
        /// Measure only these controllers (repeat or comma-separate; default both), e.g. to
        /// profile one of them with heaptrack through `GITOPS_BENCH_CONTROLLER_ENV`.
        #[arg(long = "controller", value_delimiter = ',')]
        controllers: Vec<scenarios::memory::Measured>,
    },
    /// 6: deletion lag of finished Jobs with staggered expiry.
    Cleanup {
        /// Expiry window per size, seconds (default: 30 s per 1,000 Jobs, at least 10 s).
        #[arg(long = "window", value_delimiter = ',')]
        windows: Vec<u64>,
        /// The cleanup controller's DELETE_RATE (its default is 10/s).
        #[arg(long, default_value_t = 100.0)]
        delete_rate: f64,
    },
}

impl Cli {
    fn sizes(&self, full: &[usize], quick: &[usize]) -> Vec<usize> {
        match (self.sizes.is_empty(), self.quick) {
            (false, _) => self.sizes.clone(),
            (true, true) => quick.to_vec(),
            (true, false) => full.to_vec(),
        }
    }

    fn latencies(&self, full: &[Latency], quick: &[Latency]) -> Vec<Latency> {
        match (self.latencies.is_empty(), self.quick) {
            (false, _) => self.latencies.clone(),
            (true, true) => quick.to_vec(),
            (true, false) => full.to_vec(),
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    gitops_runtime::install_crypto_provider();
    let cli = Cli::parse();
    let quick = cli.quick;
    const ZERO: Latency = Latency::Fixed(0);
    const TEN: Latency = Latency::Fixed(10);
    const REAL: Latency = Latency::Realistic;
    match &cli.scenario {
        Scenario::Single { samples } => {
            let samples = samples.unwrap_or(if quick { 20 } else { 100 });
            scenarios::single::run(&cli.latencies(&[TEN, REAL], &[TEN, REAL]), samples).await
        }
        Scenario::Bulk { baseline_budget } => {
            let budget = baseline_budget.unwrap_or(if quick { 15 } else { 120 });
            scenarios::bulk::run(
                &cli.sizes(&[100, 1000, 5000], &[100]),
                &cli.latencies(&[ZERO, TEN, REAL], &[ZERO, TEN, REAL]),
                Duration::from_secs(budget),
            )
            .await
        }
        Scenario::Steady { resync, periods } => {
            let resync = if quick { (*resync).min(5) } else { *resync };
            let periods = if quick { (*periods).min(2) } else { *periods };
            scenarios::steady::run(
                &cli.sizes(&[1000, 5000], &[100]),
                Duration::from_secs(resync),
                periods,
            )
            .await
        }
        Scenario::Restart => {
            let latency = cli.latencies(&[TEN], &[TEN])[0];
            scenarios::restart::run(&cli.sizes(&[1000], &[100]), latency).await
        }
        Scenario::Memory { controllers } => {
            scenarios::memory::run(&cli.sizes(&[1000, 10000], &[100]), controllers).await
        }
        Scenario::Cleanup {
            windows,
            delete_rate,
        } => {
            let sizes = cli.sizes(&[1000, 10000], &[100]);
            let windows: Vec<u64> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    windows.get(i).copied().unwrap_or_else(|| {
                        (u64::try_from(n).unwrap_or(u64::MAX) * 30 / 1000).max(10)
                    })
                })
                .collect();
            scenarios::cleanup::run(&sizes, &windows, *delete_rate).await
        }
    }
}
