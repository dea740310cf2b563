//! `cargo xtask test`: everything CI checks, in the order that fails fastest.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::run::{RunEnvironment, cargo};

/// About 20 s of fuzzing: enough to catch shallow parser bugs on every CI run, the same inputs
/// everywhere; `cargo xtask fuzz` explores further.
const FUZZ_BUDGET: crate::reliability::FuzzBudget = crate::reliability::FuzzBudget::Reproducible {
    runs: 400_000,
    seed: 1,
};

/// What a clean run needs on disk: ~7 GiB measured for target/ (debug, release, fuzz builds),
/// plus the Go caches when the tools are built for the first time.
const DISK_NEEDED_GIB: u64 = 8;

/// The release the harness's authentik double imitates (`gitops_harness::AUTHENTIK_VERSION_VARIABLE`;
/// xtask does not link the harness).
const AUTHENTIK_VERSION_VARIABLE: &str = "GITOPS_TEST_AUTHENTIK_VERSION";

/// The service-discovery end-to-end tests that run once per extra authentik release.
const PER_VERSION_TESTS: [&str; 2] = ["lifecycle", "ownership"];

pub fn run(root: &Path, all_versions: bool) -> Result<()> {
    warn_when_disk_is_short(root);
    step(root, "formatting", &["fmt", "--all", "--", "--check"], &[])?;
    step(
        root,
        "clippy",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;

    eprintln!("==> tools: the pinned tools (built from source on the first run, then cached)");
    gitops_testenv::ensure_all_tools()?;

    // The image tests check these archives and run them with the pinned runc; the end-to-end
    // tests on the test node install the chart with them.
    eprintln!("==> images: cargo xtask image (static release binaries, as users get them)");
    let started = Instant::now();
    crate::image::run(root, &crate::image::Args::default())?;
    eprintln!("==> images: built in {}s", started.elapsed().as_secs());

    let environment = RunEnvironment::acquire("test environment")?;
    step(
        root,
        "tests",
        &["test", "--workspace", "--locked"],
        &[environment.variable()?],
    )?;
    // The workspace run used the newest release; then the oldest, or every other one.
    let releases = authentik_releases(root)?;
    let extra: Vec<&String> = if all_versions {
        releases.iter().rev().skip(1).collect()
    } else {
        releases.first().into_iter().collect()
    };
    for release in extra {
        let mut args = vec!["test", "--locked", "-p", "gitops-service-discovery"];
        for test in PER_VERSION_TESTS {
            args.extend(["--test", test]);
        }
        step(
            root,
            &format!("end-to-end tests against authentik {release}"),
            &args,
            &[
                environment.variable()?,
                (AUTHENTIK_VERSION_VARIABLE, release.as_str()),
            ],
        )?;
    }
    // Contract mode (GITOPS_TEST_AUTHENTIK_URL) against a double reached only as an external
    // server, so the mode cannot rot unnoticed.
    crate::contract::run(root, environment.variable()?)?;
    drop(environment); // stops what this run started before the demo starts its own

    crate::reliability::fuzz(root, FUZZ_BUDGET)?;

    // The README's first command, end to end.
    eprintln!("==> demo: cargo xtask demo --exit-when-ready");
    let started = Instant::now();
    crate::demo::run(
        root,
        crate::demo::Options {
            exit_when_ready: true,
            in_cluster: false,
        },
    )?;
    eprintln!("==> demo: passed in {}s", started.elapsed().as_secs());
    Ok(())
}

/// The supported authentik releases, oldest first: one facts file each in
/// `crates/authentik-double/contract/versions/`.
fn authentik_releases(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("crates/authentik-double/contract/versions");
    let mut releases: Vec<((u32, u32), String)> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let minor = name.strip_suffix(".json")?.to_owned();
            let (year, month) = minor.split_once('.')?;
            Some(((year.parse().ok()?, month.parse().ok()?), minor))
        })
        .collect();
    releases.sort();
    anyhow::ensure!(
        !releases.is_empty(),
        "no release facts in {}",
        dir.display()
    );
    Ok(releases.into_iter().map(|(_, minor)| minor).collect())
}

/// A full disk shows up as linker bus errors deep in the build; say so up front instead.
fn warn_when_disk_is_short(root: &Path) {
    let Ok(stats) = nix::sys::statvfs::statvfs(root) else {
        return;
    };
    let free_gib = stats.blocks_available() * stats.fragment_size() / (1 << 30);
    if free_gib < DISK_NEEDED_GIB {
        eprintln!(
            "warning: only {free_gib} GiB free on the disk of {}; a clean run needs about {DISK_NEEDED_GIB} GiB \
             (a full disk shows up as `ld terminated with signal 7 [Bus error]`)",
            root.display()
        );
    }
}

fn step(root: &Path, name: &str, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let started = Instant::now();
    cargo(root, args, env).with_context(|| format!("{name} failed"))?;
    eprintln!("==> {name}: passed in {}s", started.elapsed().as_secs());
    Ok(())
}
