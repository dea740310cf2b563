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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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
///
/// It must outlive whatever happens to the directories around it: the registry (`$2`'s
/// directory) is recreated when it was removed, and when even that fails the environment is
/// stopped without the lock (nobody has used it for `$4` seconds). Should `$1` itself vanish,
/// its processes are stopped by the pids last read from it (every `pids/*.pid` but its own, so
/// components added later are included).
const WATCHDOG_SCRIPT: &str = r#"
dir=$1 lock=$2 pointer=$3 grace=$4
known=""
remember_pids() {
  [ -d "$dir/pids" ] || return 0
  known=""
  for file in "$dir"/pids/*.pid; do
    [ "${file##*/}" = watchdog.pid ] && continue
    known="$(cat "$file" 2>/dev/null) $known"
  done
}
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
  pid=$1
  ours "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null
  n=0
  while ours "$pid" && [ "$n" -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
  if ours "$pid"; then kill -KILL "$pid" 2>/dev/null; fi
}
stop_all() {
  for pid in $known; do stop "$pid"; done
  rm -rf "$dir"
  exit 0
}
remember_pids
idle=0
while sleep 1; do
  if [ ! -d "$dir" ]; then
    echo "watchdog: $dir was removed; stopping its processes"
    stop_all
  fi
  remember_pids
  if live_users; then idle=0; continue; fi
  idle=$((idle + 1))
  [ "$idle" -lt "$grace" ] && continue
  mkdir -p "${lock%/*}" 2>/dev/null
  if (: >>"$lock") 2>/dev/null; then
    exec 9>>"$lock"
    flock 9
    if live_users; then exec 9>&-; idle=0; continue; fi
  else
    echo "watchdog: cannot open $lock; stopping without it"
  fi
  : > "$dir/stopping"
  [ "$(cat "$pointer" 2>/dev/null)" = "$dir" ] && rm -f "$pointer"
  exec 9>&-
  stop_all
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

/// The registry's file naming the shared environment's directory.
const POINTER: &str = "shared";

fn pointer() -> PathBuf {
    registry().join(POINTER)
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
    start_watchdog(&plane, LEASE_GRACE_SECONDS, &registry())?;
    record(&plane)?;
    Ok(plane)
}

/// Starts an environment for one owner process (`cargo xtask test`), not shared with anyone
/// else. The owner stops it; should the owner die first, the watchdog does.
pub fn start_private(owner: u32) -> Result<ControlPlane> {
    let plane = ControlPlane::start()?;
    register_user(plane.dir(), owner)?;
    start_watchdog(&plane, 1, &registry())?;
    Ok(plane)
}

fn register_user(dir: &Path, pid: u32) -> Result<()> {
    let path = dir.join("users").join(pid.to_string());
    std::fs::write(&path, "").context(|| format!("writing {}", path.display()))
}

/// Starts the watchdog of `plane`, whose registry (lock and shared-environment pointer) is in
/// `registry`.
fn start_watchdog(plane: &ControlPlane, grace_seconds: u32, registry: &Path) -> Result<()> {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(WATCHDOG_SCRIPT)
        .arg("gitops-testenv-watchdog")
        .arg(plane.dir())
        .arg(registry.join("lock"))
        .arg(registry.join(POINTER))
        .arg(grace_seconds.to_string());
    control_plane::spawn_logged(plane.dir(), WATCHDOG, command).map(drop)
}

/// An environment found on this machine, whoever started it.
#[derive(Debug, Clone)]
pub struct FoundEnvironment {
    pub dir: PathBuf,
    /// Since it became ready (or since its directory was made, when it never did).
    pub age: Option<Duration>,
    /// Registered users whose process still lives.
    pub users: Vec<u32>,
    /// Every component runs.
    pub running: bool,
    /// A watchdog stops it once its users are gone (leased or private).
    pub watched: bool,
    /// The registry names it as the shared environment.
    pub shared: bool,
}

/// Every environment under the temporary directory and the cache: the shared one, leased and
/// private ones, and leftovers whose processes died or whose watchdog is gone.
pub fn find_all() -> Vec<FoundEnvironment> {
    let shared = std::fs::read_to_string(pointer())
        .ok()
        .map(|dir| PathBuf::from(dir.trim()));
    let mut found: Vec<FoundEnvironment> = candidate_dirs()
        .into_iter()
        .map(|dir| describe(dir, shared.as_deref()))
        .collect();
    found.sort_by(|a, b| a.dir.cmp(&b.dir));
    found
}

/// Directories that look like environments: `gitops-testenv-*` under the temporary directory
/// and anything with an `environment.json` or `pids/` under `<cache>/testenv`.
fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for (parent, prefix) in [(std::env::temp_dir(), "gitops-testenv-"), (registry(), "")] {
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let named = entry.file_name().to_string_lossy().starts_with(prefix);
            let looks_like_one =
                path.join("environment.json").exists() || path.join("pids").is_dir();
            if path.is_dir() && named && looks_like_one {
                dirs.push(path);
            }
        }
    }
    dirs
}

fn describe(dir: PathBuf, shared: Option<&Path>) -> FoundEnvironment {
    let now = std::time::SystemTime::now();
    let age = ControlPlane::open(&dir)
        .ok()
        .map(|plane| std::time::UNIX_EPOCH + Duration::from_secs(plane.info().started_unix))
        .or_else(|| std::fs::metadata(&dir).and_then(|m| m.modified()).ok())
        .and_then(|since| now.duration_since(since).ok());
    let users = std::fs::read_dir(dir.join("users"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
                .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
                .collect()
        })
        .unwrap_or_default();
    FoundEnvironment {
        running: control_plane::COMPONENTS
            .iter()
            .all(|name| control_plane::process_running(&dir, name)),
        watched: control_plane::process_running(&dir, WATCHDOG),
        shared: shared == Some(dir.as_path()),
        age,
        users,
        dir,
    }
}

/// `testenv down --all`: stops every environment [`find_all`] finds, whoever uses it, and
/// forgets the shared one. Returns the directories stopped.
pub fn down_all() -> Result<Vec<PathBuf>> {
    let _lock = lock_registry()?;
    let mut stopped = Vec::new();
    for found in find_all() {
        control_plane::stop_dir(&found.dir)?;
        stopped.push(found.dir);
    }
    match std::fs::remove_file(pointer()) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).context(|| format!("removing {}", pointer().display()))?
        }
        _ => {}
    }
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field case: the registry the watchdog locks was removed while a leased environment
    /// ran (its log said `cannot create <cache>/testenv/lock: Directory nonexistent` and it died).
    /// Once its last user is gone it must still stop the environment.
    #[test]
    fn a_leased_environment_stops_after_its_registry_was_removed() {
        let registry = tempfile::tempdir().expect("a registry directory");
        let plane = ControlPlane::start().expect("an environment");
        let mut user = Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("a user process");
        register_user(plane.dir(), user.id()).expect("registered");
        start_watchdog(&plane, 1, registry.path()).expect("watchdog");
        assert!(plane.is_running());
        let components: Vec<i32> = plane.processes().iter().filter_map(|p| p.pid).collect();
        assert_eq!(components.len(), 3);

        std::fs::remove_dir_all(registry.path()).expect("registry removed");
        user.kill().expect("user stopped");
        user.wait().expect("user reaped");

        let alive = |pids: &[i32]| -> Vec<i32> {
            let needle = plane.dir().to_string_lossy().into_owned();
            pids.iter()
                .copied()
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&needle))
                })
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !alive(&components).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        let left = alive(&components);
        let _ = control_plane::stop_dir(plane.dir());
        assert!(
            left.is_empty(),
            "components {left:?} still running a minute after their last user left"
        );
        assert!(!plane.dir().exists(), "the watchdog removes the directory");
    }
}
