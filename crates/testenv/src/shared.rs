//! Which environment a process uses, and who stops it.
//!
//! - `GITOPS_TESTENV_DIR` names an environment to use (set by `cargo xtask test` and by
//!   `eval $(cargo xtask testenv env)`); it is never started or stopped by its users.
//! - Otherwise there is one *shared* environment per user, recorded in
//!   `<cache>/testenv/shared` and guarded by the file lock `<cache>/testenv/lock`:
//!   - `cargo xtask testenv up` starts it (or adopts a running one) and it runs until
//!     `cargo xtask testenv down`;
//!   - a test process that finds none starts one *leased*: every test process using it registers
//!     its pid in `<dir>/users/`, and a small watchdog process stops it once no registered
//!     process has lived for a few seconds. So consecutive test binaries of one `cargo test` run
//!     share it, and it goes away after the run however the tests ended (panic, abort, kill).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::control_plane::{self, ControlPlane, WATCHDOG};
use crate::error::{Error, IoContext, Result};
use crate::pins;
use crate::util::FileLock;

/// Names the directory of an environment to use instead of the shared one.
pub const DIR_ENV: &str = "GITOPS_TESTENV_DIR";

/// How long a leased environment outlives its last user: long enough for cargo to start the
/// next test binary of the same run.
const LEASE_GRACE_SECONDS: u32 = 20;

/// Stops the environment in `$1` once no pid registered in `$1/users/` has lived for `$4`
/// seconds. Takes the registry lock (`$2`, shared with the Rust side, which uses flock(2)
/// too) before deciding, so that no process registers while the environment goes away.
const WATCHDOG_SCRIPT: &str = r#"
dir=$1 lock=$2 pointer=$3 grace=$4
live_users() {
  found=1
  for user in "$dir"/users/*; do
    [ -e "$user" ] || continue
    if kill -0 "${user##*/}" 2>/dev/null; then found=0; else rm -f "$user"; fi
  done
  return $found
}
ours() {
  tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$dir"
}
stop() {
  pid=$(cat "$dir/pids/$1.pid" 2>/dev/null) || return 0
  ours "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null
  n=0
  while ours "$pid" && [ "$n" -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
  if ours "$pid"; then kill -KILL "$pid" 2>/dev/null; fi
}
idle=0
while sleep 1; do
  [ -d "$dir" ] || exit 0
  if live_users; then idle=0; continue; fi
  idle=$((idle + 1))
  [ "$idle" -lt "$grace" ] && continue
  exec 9>>"$lock"
  flock 9
  if live_users; then exec 9>&-; idle=0; continue; fi
  : > "$dir/stopping"
  [ "$(cat "$pointer" 2>/dev/null)" = "$dir" ] && rm -f "$pointer"
  exec 9>&-
  for name in kube-controller-manager kube-apiserver etcd; do stop "$name"; done
  rm -rf "$dir"
  exit 0
done
"#;

fn registry() -> PathBuf {
    pins::cache_root().join("testenv")
}

fn lock_registry() -> Result<FileLock> {
    FileLock::acquire(
        &registry().join("lock"),
        "another process starting or stopping the shared test environment",
    )
}

fn pointer() -> PathBuf {
    registry().join("shared")
}

/// The shared environment recorded in the registry, if its processes run. Call with the
/// registry locked.
fn recorded() -> Option<ControlPlane> {
    let dir = std::fs::read_to_string(pointer()).ok()?;
    let plane = ControlPlane::open(Path::new(dir.trim())).ok()?;
    (plane.is_running() && !plane.dir().join("stopping").exists()).then_some(plane)
}

/// The running shared environment, if any.
pub fn shared_environment() -> Result<Option<ControlPlane>> {
    let _lock = lock_registry()?;
    Ok(recorded())
}

/// `testenv up [--node]`: starts the shared environment, or keeps the running one (a leased one
/// loses its watchdog and stays until `down`). Returns it and whether it was started now.
pub fn up(with_node: bool) -> Result<(ControlPlane, bool)> {
    let _lock = lock_registry()?;
    if let Some(plane) = recorded() {
        if with_node && !plane.has_node() {
            return Err(Error::NodeBusy(format!(
                "the shared environment in {} runs without a node; stop it with                  `cargo xtask testenv down` first",
                plane.dir().display()
            )));
        }
        control_plane::stop_process(plane.dir(), WATCHDOG)?;
        return Ok((plane, false));
    }
    let plane = if with_node {
        ControlPlane::start_with_node()?
    } else {
        ControlPlane::start()?
    };
    record(&plane)?;
    Ok((plane, true))
}

/// `testenv down`: stops the shared environment; returns its directory if there was one.
pub fn down() -> Result<Option<PathBuf>> {
    let _lock = lock_registry()?;
    let Ok(dir) = std::fs::read_to_string(pointer()) else {
        return Ok(None);
    };
    let dir = PathBuf::from(dir.trim());
    // Also cleans up after an environment whose processes died.
    control_plane::stop_dir(&dir)?;
    std::fs::remove_file(pointer()).context(|| format!("removing {}", pointer().display()))?;
    Ok(Some(dir))
}

fn record(plane: &ControlPlane) -> Result<()> {
    crate::util::write_atomic(&pointer(), plane.dir().to_string_lossy().as_bytes())
}

/// The environment a test process uses: the one `GITOPS_TESTENV_DIR` names, else the shared
/// one, else a newly started leased shared one. Registers this process as a user.
pub fn acquire_for_tests() -> Result<ControlPlane> {
    if let Some(dir) = std::env::var_os(DIR_ENV).filter(|dir| !dir.is_empty()) {
        let plane = ControlPlane::open(Path::new(&dir))?;
        if !plane.is_running() {
            return Err(Error::NotRunning {
                dir: plane.dir().to_owned(),
                reason: format!(
                    "{DIR_ENV} names it but its processes are not running ({:?})",
                    plane.processes()
                ),
            });
        }
        return Ok(plane);
    }
    let _lock = lock_registry()?;
    if let Some(plane) = recorded() {
        if plane
            .dir()
            .join("pids")
            .join(format!("{WATCHDOG}.pid"))
            .exists()
        {
            register_user(plane.dir(), std::process::id())?;
        }
        return Ok(plane);
    }
    let plane = ControlPlane::start()?;
    register_user(plane.dir(), std::process::id())?;
    start_watchdog(&plane, LEASE_GRACE_SECONDS)?;
    record(&plane)?;
    Ok(plane)
}

/// Starts an environment for one owner process (`cargo xtask test`), not shared with anyone
/// else. The owner stops it; should the owner die first, the watchdog does.
pub fn start_private(owner: u32) -> Result<ControlPlane> {
    let plane = ControlPlane::start()?;
    register_user(plane.dir(), owner)?;
    start_watchdog(&plane, 1)?;
    Ok(plane)
}

fn register_user(dir: &Path, pid: u32) -> Result<()> {
    let path = dir.join("users").join(pid.to_string());
    std::fs::write(&path, "").context(|| format!("writing {}", path.display()))
}

fn start_watchdog(plane: &ControlPlane, grace_seconds: u32) -> Result<()> {
    let log = plane.dir().join("logs").join(format!("{WATCHDOG}.log"));
    let out = std::fs::File::create(&log).context(|| format!("creating {}", log.display()))?;
    let err = out
        .try_clone()
        .context(|| format!("opening {}", log.display()))?;
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(WATCHDOG_SCRIPT)
        .arg("gitops-testenv-watchdog")
        .arg(plane.dir())
        .arg(registry().join("lock"))
        .arg(pointer())
        .arg(grace_seconds.to_string())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .context(|| "starting the environment's watchdog".to_owned())?;
    control_plane::write_pid(plane.dir(), WATCHDOG, child.id())
}
