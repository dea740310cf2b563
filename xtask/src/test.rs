//! `cargo xtask test`: everything CI checks, in the order that fails fastest.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};
use gitops_testenv::{ControlPlane, shared};

/// Long enough to catch shallow parser bugs on every CI run; `cargo xtask fuzz` goes deeper.
const FUZZ_SECONDS: u64 = 20;

/// What a clean run needs on disk: ~7 GiB measured for target/ (debug, release, fuzz builds),
/// plus the Go caches when the tools are built for the first time.
const DISK_NEEDED_GIB: u64 = 8;

pub fn run(root: &Path) -> Result<()> {
    warn_when_disk_is_short(root);
    step(root, "formatting", &["fmt", "--all", "--", "--check"], None)?;
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
        None,
    )?;

    eprintln!("==> tools: the pinned tools (built from source on the first run, then cached)");
    gitops_testenv::ensure_all_tools()?;

    let environment = RunEnvironment::acquire()?;
    step(
        root,
        "tests",
        &["test", "--workspace", "--locked"],
        Some(environment.plane.dir()),
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

/// The test environment of one `cargo xtask test` run.
struct RunEnvironment {
    plane: ControlPlane,
    /// Started by this run (and so stopped by it), as opposed to one the caller kept up.
    owned: bool,
}

impl RunEnvironment {
    /// Reuses the environment `GITOPS_TESTENV_DIR` names when it runs (kept up between runs with
    /// `cargo xtask testenv up`), else starts one for this run only.
    fn acquire() -> Result<Self> {
        if let Some(dir) = std::env::var_os(shared::DIR_ENV).filter(|dir| !dir.is_empty()) {
            let plane = ControlPlane::open(Path::new(&dir))?;
            if plane.is_running() {
                eprintln!("==> test environment: reusing {}", plane.dir().display());
                return Ok(Self {
                    plane,
                    owned: false,
                });
            }
            eprintln!(
                "==> test environment: {} is not running; starting one for this run",
                plane.dir().display()
            );
        }
        eprintln!("==> test environment: starting one for this run");
        let plane = shared::start_private(std::process::id())?;
        Ok(Self { plane, owned: true })
    }
}

impl Drop for RunEnvironment {
    fn drop(&mut self) {
        if self.owned {
            match self.plane.stop() {
                Ok(()) => eprintln!("==> test environment: stopped"),
                Err(error) => eprintln!("==> test environment: stopping failed: {error}"),
            }
        }
    }
}

fn step(root: &Path, name: &str, args: &[&str], environment: Option<&Path>) -> Result<()> {
    eprintln!("==> {name}: cargo {}", args.join(" "));
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO"));
    command.args(args).current_dir(root);
    if let Some(dir) = environment {
        command.env(shared::DIR_ENV, dir);
    }
    let status = command.status()?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    eprintln!("==> {name}: passed in {}s", started.elapsed().as_secs());
    Ok(())
}
