//! What several xtask commands share: running cargo, and the API server a run uses.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};
use gitops_testenv::{ControlPlane, shared};

/// The cargo that runs xtask, without the variables it set for xtask itself: a child cargo that
/// inherits `CARGO_MANIFEST_DIR` reruns build scripts that watch it (ring's), so every switch
/// between `cargo xtask …` and a plain `cargo test` rebuilt about 20 crates.
pub fn cargo_command() -> Command {
    let mut command = Command::new(env!("CARGO"));
    command
        .env_remove("CARGO_MANIFEST_DIR")
        .env_remove("CARGO_MANIFEST_PATH");
    command
}

/// Runs `cargo <args>` in the workspace with extra environment variables.
pub fn cargo(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    eprintln!("==> cargo {}", args.join(" "));
    let status = cargo_command()
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The API server of one run: the one `GITOPS_TESTENV_DIR` names when it runs (kept up between
/// runs with `cargo xtask testenv up`), else a private one that the run starts and stops.
pub struct RunEnvironment {
    plane: ControlPlane,
    /// Started by this run (and so stopped by it), as opposed to one the caller kept up.
    owned: bool,
    /// How progress lines name it (`test environment`, `bench environment`).
    label: &'static str,
}

impl RunEnvironment {
    pub fn acquire(label: &'static str) -> Result<Self> {
        if let Some(dir) = std::env::var_os(shared::DIR_ENV).filter(|dir| !dir.is_empty()) {
            let plane = ControlPlane::open(Path::new(&dir))?;
            if plane.is_running() {
                eprintln!("==> {label}: reusing {}", plane.dir().display());
                return Ok(Self {
                    plane,
                    owned: false,
                    label,
                });
            }
            eprintln!(
                "==> {label}: {} is not running; starting a private one",
                plane.dir().display()
            );
        }
        eprintln!("==> {label}: starting a private one");
        let plane = shared::start_private(std::process::id())?;
        Ok(Self {
            plane,
            owned: true,
            label,
        })
    }

    /// `GITOPS_TESTENV_DIR` for the processes that use this environment.
    pub fn variable(&self) -> Result<(&'static str, &str)> {
        let dir =
            self.plane.dir().to_str().ok_or_else(|| {
                anyhow::anyhow!("{} is not valid UTF-8", self.plane.dir().display())
            })?;
        Ok((shared::DIR_ENV, dir))
    }
}

impl Drop for RunEnvironment {
    fn drop(&mut self) {
        if self.owned {
            match self.plane.stop() {
                Ok(()) => eprintln!("==> {}: stopped", self.label),
                Err(error) => eprintln!("==> {}: stopping failed: {error}", self.label),
            }
        }
    }
}
