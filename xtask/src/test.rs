//! `cargo xtask test`: everything CI checks, in the order that fails fastest.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::run::{RunEnvironment, cargo};

/// Long enough to catch shallow parser bugs on every CI run; `cargo xtask fuzz` goes deeper.
const FUZZ_SECONDS: u64 = 20;

/// Debian's runc, which the image tests run the images with.
const RUNC: &str = "/usr/sbin/runc";

/// What a clean run needs on disk: ~7 GiB measured for target/ (debug, release, fuzz builds),
/// plus the Go caches when the tools are built for the first time.
const DISK_NEEDED_GIB: u64 = 8;

pub fn run(root: &Path) -> Result<()> {
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

    // The image tests check these archives and run them with Debian's runc; the end-to-end
    // tests on the test node install the chart with them.
    eprintln!("==> images: cargo xtask image (static release binaries, as users get them)");
    let started = Instant::now();
    crate::image::run(root, &crate::image::Args::default())?;
    crate::image::ensure_debian_package(Path::new(RUNC), "runc")?;
    eprintln!("==> images: built in {}s", started.elapsed().as_secs());

    let environment = RunEnvironment::acquire("test environment")?;
    step(
        root,
        "tests",
        &["test", "--workspace", "--locked"],
        &[environment.variable()?],
    )?;
    drop(environment); // stops what this run started before the demo starts its own

    crate::reliability::fuzz(root, FUZZ_SECONDS)?;

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
