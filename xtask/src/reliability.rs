//! `cargo xtask chaos` (the reliability suite at a chosen scale) and `cargo xtask fuzz` (the
//! authentik response parsers under libFuzzer).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::run::cargo;

/// How hard the reliability suite pushes; `cargo xtask test` runs the defaults.
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// SIGKILLs of the service-discovery controller in the kill -9 scenario.
    #[arg(long, default_value_t = 200)]
    kills: usize,
    /// Seconds authentik stays down in the outage scenario.
    #[arg(long, default_value_t = 60)]
    outage_secs: u64,
    /// Leader kills in the failover scenario.
    #[arg(long, default_value_t = 20)]
    failovers: usize,
    /// ProxyConfigs per scenario.
    #[arg(long, default_value_t = 40)]
    objects: usize,
}

/// Runs the reliability suite at the given scale (long by default; see docs/reliability.md).
pub fn chaos(root: &Path, args: &ChaosArgs) -> Result<()> {
    cargo(root, &["build", "-p", "gitops-service-discovery"], &[])?;
    gitops_testenv::ensure_all_tools()?;
    let started = Instant::now();
    cargo(
        root,
        &[
            "test",
            "-p",
            "gitops-reliability",
            "--",
            "--nocapture",
            "--test-threads=1",
        ],
        &[
            ("GITOPS_CHAOS_KILLS", &args.kills.to_string()),
            ("GITOPS_CHAOS_OUTAGE_SECS", &args.outage_secs.to_string()),
            ("GITOPS_CHAOS_FAILOVERS", &args.failovers.to_string()),
            ("GITOPS_CHAOS_OBJECTS", &args.objects.to_string()),
        ],
    )?;
    eprintln!("==> chaos: passed in {}s", started.elapsed().as_secs());
    Ok(())
}

const FUZZ_DIR: &str = "crates/authentik-client";
const FUZZ_TARGET: &str = "parse_responses";

/// How much fuzzing to do.
pub enum FuzzBudget {
    /// Explore for this long from the corpus kept under `fuzz/corpus/` (`cargo xtask fuzz`).
    Seconds(u64),
    /// A fixed number of inputs from a fixed seed and an empty corpus: the same inputs on every
    /// machine, so a CI result reproduces locally (`cargo xtask test`).
    Reproducible { runs: u64, seed: u32 },
}

/// Runs the response-parser fuzz target (installing cargo-fuzz once; it needs the nightly
/// toolchain, which rustup machines of this project carry).
pub fn fuzz(root: &Path, budget: FuzzBudget) -> Result<()> {
    let installed = crate::run::cargo_command()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !installed {
        eprintln!("==> fuzz: installing cargo-fuzz (once)");
        cargo(root, &["install", "cargo-fuzz", "--locked"], &[])?;
    }
    let (corpus, limits) = match budget {
        FuzzBudget::Seconds(seconds) => {
            eprintln!("==> fuzz: {FUZZ_TARGET} for {seconds}s");
            (None, vec![format!("-max_total_time={seconds}")])
        }
        FuzzBudget::Reproducible { runs, seed } => {
            eprintln!("==> fuzz: {FUZZ_TARGET}, {runs} inputs from seed {seed}");
            let fresh_corpus = root.join("target/fuzz-reproducible-corpus");
            let _ = std::fs::remove_dir_all(&fresh_corpus);
            std::fs::create_dir_all(&fresh_corpus)
                .with_context(|| format!("creating {}", fresh_corpus.display()))?;
            (
                Some(fresh_corpus),
                vec![format!("-runs={runs}"), format!("-seed={seed}")],
            )
        }
    };
    let status = Command::new("cargo") // the rustup proxy, which understands `+nightly`
        .args(["+nightly", "fuzz", "run", FUZZ_TARGET])
        .args(corpus)
        .arg("--")
        .args(limits)
        .current_dir(root.join(FUZZ_DIR))
        .status()
        .context("running cargo +nightly fuzz (is the nightly toolchain installed?)")?;
    if !status.success() {
        bail!(
            "fuzzing found a failure ({status}); the crashing input is under {FUZZ_DIR}/fuzz/artifacts/"
        );
    }
    Ok(())
}
