//! `cargo xtask bench`: builds the release binaries, provides a test environment and runs the
//! benchmark scenarios of `crates/bench` (docs/benchmarks.md). Never part of `cargo xtask test`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use gitops_testenv::{ControlPlane, shared};
use serde_json::{Map, Value};

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
        None,
    )?;
    gitops_testenv::ensure_all_tools()?;
    let environment = BenchEnvironment::acquire()?;
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
        cargo(root, &bench_args, Some(environment.plane.dir()))?;
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

fn cargo(root: &Path, args: &[&str], environment: Option<&Path>) -> Result<()> {
    eprintln!("==> cargo {}", args.join(" "));
    let mut command = Command::new(env!("CARGO"));
    command.args(args).current_dir(root);
    if let Some(dir) = environment {
        command.env(shared::DIR_ENV, dir);
    }
    let status = command.status()?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The benchmarks' API server: the one `GITOPS_TESTENV_DIR` names when it runs, else a
/// private one, so that nobody else's tests disturb the measurements (or are disturbed).
struct BenchEnvironment {
    plane: ControlPlane,
    owned: bool,
}

impl BenchEnvironment {
    fn acquire() -> Result<Self> {
        if let Some(dir) = std::env::var_os(shared::DIR_ENV).filter(|dir| !dir.is_empty()) {
            let plane = ControlPlane::open(Path::new(&dir))?;
            if plane.is_running() {
                eprintln!("==> bench environment: reusing {}", plane.dir().display());
                return Ok(Self {
                    plane,
                    owned: false,
                });
            }
        }
        eprintln!("==> bench environment: starting a private one");
        let plane = shared::start_private(std::process::id())?;
        Ok(Self { plane, owned: true })
    }
}

impl Drop for BenchEnvironment {
    fn drop(&mut self) {
        if self.owned {
            match self.plane.stop() {
                Ok(()) => eprintln!("==> bench environment: stopped"),
                Err(error) => eprintln!("==> bench environment: stopping failed: {error}"),
            }
        }
    }
}
