//! `cargo xtask bench`: builds the release binaries, provides a test environment and runs the
//! benchmark scenarios of `crates/bench` (docs/benchmarks.md). Never part of `cargo xtask test`.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

use crate::run::{RunEnvironment, cargo};

/// Every scenario, in the order they run.
const SCENARIOS: &[&str] = &["single", "bulk", "steady", "restart", "memory", "cleanup"];

#[derive(clap::Args)]
pub struct Args {
    /// Small sizes (100 objects): the whole run takes a few minutes instead of hours.
    #[arg(long)]
    quick: bool,
    /// Run only these scenarios (repeat or comma-separate): single, bulk, steady, restart,
    /// memory, cleanup.
    #[arg(long = "scenario", value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Further arguments for `gitops-bench`, e.g. `-- --size 1000 --latency 10`.
    #[arg(last = true)]
    extra: Vec<String>,
}

pub fn run(root: &Path, args: &Args) -> Result<()> {
    let chosen: Vec<&str> = if args.scenarios.is_empty() {
        SCENARIOS.to_vec()
    } else {
        for name in &args.scenarios {
            if !SCENARIOS.contains(&name.as_str()) {
                bail!("unknown scenario {name:?}; choose from {SCENARIOS:?}");
            }
        }
        SCENARIOS
            .iter()
            .copied()
            .filter(|s| args.scenarios.iter().any(|c| c == s))
            .collect()
    };
    cargo(
        root,
        &[
            "build",
            "--release",
            "-p",
            "gitops-service-discovery",
            "-p",
            "gitops-cleanup",
            "-p",
            "gitops-bench",
        ],
        &[],
    )?;
    gitops_testenv::ensure_all_tools()?;
    let environment = RunEnvironment::acquire("bench environment")?;
    for scenario in &chosen {
        eprintln!("==> bench: {scenario}");
        let started = Instant::now();
        let mut bench_args = vec![
            "run",
            "-q",
            "--release",
            "-p",
            "gitops-bench",
            "--",
            scenario,
        ];
        if args.quick {
            bench_args.push("--quick");
        }
        bench_args.extend(args.extra.iter().map(String::as_str));
        cargo(root, &bench_args, &[environment.variable()?])?;
        eprintln!(
            "==> bench: {scenario} took {}s",
            started.elapsed().as_secs()
        );
    }
    let combined = combine(&root.join("target/bench"))?;
    eprintln!("==> bench: results in {}", combined.display());
    Ok(())
}

/// Merges every `<scenario>.json` present into `results.json`, keyed by scenario.
fn combine(dir: &Path) -> Result<std::path::PathBuf> {
    let mut all = Map::new();
    for scenario in SCENARIOS {
        let path = dir.join(format!("{scenario}.json"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("reading {}", path.display()))?;
            all.insert((*scenario).to_owned(), value);
        }
    }
    let path = dir.join("results.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&Value::Object(all))?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
