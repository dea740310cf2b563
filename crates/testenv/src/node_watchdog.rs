//! The watchdog of a node started for one test process ([`crate::TestEnv::with_node`]): when
//! that process dies without stopping its node (SIGKILL, Ctrl-C, abort), the watchdog stops it
//! — processes, mounts, bridge, iptables rules, cgroups, sysctls — and removes its directory.
//!
//! Undoing a node takes this crate's Rust code (see `node::teardown`), which only binaries that
//! link it have; the shell watchdog of leased environments cannot. So the watchdog is the test
//! binary itself, run again with one test selected: the one [`node_watchdog!`](crate::node_watchdog)
//! defines. It runs in its own process group, so it outlives its owner.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::control_plane::{log_path, spawn_logged, stop_dir};
use crate::error::{Error, IoContext, Result};

/// The name of the test [`node_watchdog!`](crate::node_watchdog) defines.
pub const NODE_WATCHDOG_TEST: &str = "gitops_testenv_node_watchdog";
/// Its pid-file name in the environment.
pub(crate) const NODE_WATCHDOG: &str = "node-watchdog";
/// `<pid> <start time>` of the process that owns the node.
const OWNER_VARIABLE: &str = "GITOPS_TESTENV_NODE_OWNER";
const DIR_VARIABLE: &str = "GITOPS_TESTENV_NODE_DIR";
const STARTED_FILE: &str = "node-watchdog.started";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Defines the (ignored) test that watches a node this test binary starts; every test binary
/// that calls [`TestEnv::with_node`](crate::TestEnv::with_node) needs it once.
#[macro_export]
macro_rules! node_watchdog {
    () => {
        #[test]
        #[ignore = "the test environment runs it as the watchdog of a node this binary starts"]
        fn gitops_testenv_node_watchdog() {
            $crate::run_node_watchdog();
        }
    };
}

/// The body of the [`node_watchdog!`](crate::node_watchdog) test: returns at once unless the
/// test environment started it; otherwise waits for the owner to die, then stops its node.
#[doc(hidden)]
pub fn run_node_watchdog() {
    let (Some(owner), Some(dir)) = (
        std::env::var(OWNER_VARIABLE).ok(),
        std::env::var_os(DIR_VARIABLE).map(PathBuf::from),
    ) else {
        return;
    };
    if let Err(error) = std::fs::write(dir.join("pids").join(STARTED_FILE), "") {
        eprintln!("node watchdog: {error}");
        return;
    }
    while is_alive(&owner) && dir.exists() {
        std::thread::sleep(Duration::from_secs(1));
    }
    if !dir.exists() {
        return; // stopped by its owner
    }
    eprintln!(
        "node watchdog: the owner ({owner}) is gone; stopping the node in {}",
        dir.display()
    );
    // Not by itself: the pid file is its own.
    let _ = std::fs::remove_file(dir.join("pids").join(format!("{NODE_WATCHDOG}.pid")));
    if let Err(error) = stop_dir(&dir) {
        eprintln!("node watchdog: {error}");
    }
}

/// `<pid> <start time>` of this process.
fn identity(pid: u32) -> Option<String> {
    start_time(pid).map(|start| format!("{pid} {start}"))
}

/// Clock ticks after boot when the process started (field 22 of `/proc/<pid>/stat`): with the
/// pid, it tells a process apart from a later one that got the same pid.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(19).map(str::to_owned)
}

fn is_alive(owner: &str) -> bool {
    owner
        .split_once(' ')
        .and_then(|(pid, _)| pid.parse().ok())
        .and_then(identity)
        .is_some_and(|now| now == owner)
}

/// Starts the watchdog of the node in `dir` for this process: this test binary, running only
/// its [`NODE_WATCHDOG_TEST`]. Fails when the binary has none.
pub(crate) fn start(dir: &Path) -> Result<()> {
    let owner = identity(std::process::id()).ok_or_else(|| Error::NoNodeWatchdog {
        detail: "cannot read this process's start time in /proc".into(),
    })?;
    let binary = std::env::current_exe().context(|| "finding this test binary".to_owned())?;
    let mut command = Command::new(&binary);
    command
        // The directory is a second (never matching) name filter: it puts the directory on the
        // command line, which is how stopping checks a pid is still this environment's.
        .args(["--exact", "--ignored", "--nocapture", NODE_WATCHDOG_TEST])
        .arg(dir)
        .env(OWNER_VARIABLE, owner)
        .env(DIR_VARIABLE, dir);
    let mut child = spawn_logged(dir, NODE_WATCHDOG, command)?;
    let log = log_path(dir, NODE_WATCHDOG);
    let started = dir.join("pids").join(STARTED_FILE);
    let deadline = Instant::now() + START_TIMEOUT;
    while !started.exists() {
        let exited = child
            .try_wait()
            .context(|| "checking on the node's watchdog".to_owned())?;
        if exited.is_some() || Instant::now() > deadline {
            return Err(Error::NoNodeWatchdog {
                detail: format!(
                    "{} did not run `{NODE_WATCHDOG_TEST}` (see {})",
                    binary.display(),
                    log.display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_start_time_is_not() {
        let me = identity(std::process::id()).expect("own identity");
        assert!(is_alive(&me));
        let (pid, _) = me.split_once(' ').expect("pid and start time");
        assert!(!is_alive(&format!("{pid} 1")));
        assert!(!is_alive("not a pid"));
    }
}
