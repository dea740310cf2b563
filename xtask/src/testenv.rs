//! `cargo xtask tools` and `cargo xtask testenv up|down|status|env`: the pinned tools and the
//! shared test environment, for people and scripts.

use anyhow::{Result, bail};
use clap::Subcommand;
use gitops_testenv::{ControlPlane, pins, shared};

#[derive(Subcommand)]
pub enum Action {
    /// Start the shared test environment (etcd, kube-apiserver, kube-controller-manager) and
    /// keep it running until `down`; tests and `cargo test` use it while it runs.
    Up {
        /// Add a node (containerd, runc, CNI bridge, kubelet, kube-proxy, kube-scheduler) so
        /// that Pods run; needs root, one per machine.
        #[arg(long)]
        node: bool,
    },
    /// Stop the shared test environment's processes and delete its directory.
    Down {
        /// Stop every test environment on this machine (leased, private, leftovers), not
        /// only the shared one, even while tests use them.
        #[arg(long)]
        all: bool,
    },
    /// Show the shared test environment (where, its processes), then every environment found
    /// under the temporary and cache directories with its age and users.
    Status,
    /// Print `export KUBECONFIG=…` and `GITOPS_TESTENV_DIR=…` for `eval "$(cargo xtask testenv env)"`.
    Env,
}

/// Builds the named pinned tools (all when none are named) that are not cached yet and lists
/// where their binaries are.
pub fn tools(names: &[String]) -> Result<()> {
    let pinned = &pins::pins()?.tools;
    let names: Vec<&str> = if names.is_empty() {
        pinned.keys().map(String::as_str).collect()
    } else {
        names.iter().map(String::as_str).collect()
    };
    gitops_testenv::ensure_tools(&names)?;
    for name in names {
        let tool = pins::tool(name)?;
        let bin_dir = tool.bin_dir(name);
        for binary in tool.binaries.keys() {
            println!("{}", bin_dir.join(binary).display());
        }
    }
    Ok(())
}

pub fn run(action: Action) -> Result<()> {
    match action {
        Action::Up { node } => {
            let (plane, started) = shared::up(node)?;
            let verb = if started {
                "started"
            } else {
                "already running"
            };
            eprintln!("testenv: {verb}: {}", plane.info().server);
            eprintln!("testenv: kubeconfig {}", plane.kubeconfig().display());
            eprintln!("testenv: use it from a shell: eval \"$(cargo xtask testenv env)\"");
            Ok(())
        }
        Action::Down { all: true } => {
            let stopped = shared::down_all()?;
            for dir in &stopped {
                eprintln!("testenv: stopped and removed {}", dir.display());
            }
            if stopped.is_empty() {
                eprintln!("testenv: no test environment was found");
            }
            Ok(())
        }
        Action::Down { all: false } => {
            match shared::down()? {
                Some(dir) => eprintln!("testenv: stopped and removed {}", dir.display()),
                None => eprintln!("testenv: no shared environment was running"),
            }
            Ok(())
        }
        Action::Status => {
            print_all(&shared::find_all());
            let plane = running()?;
            println!();
            print_status(&plane);
            if !plane.is_ready() {
                bail!("the API server at {} is not ready", plane.info().server);
            }
            if plane.has_node() && !plane.is_node_ready() {
                bail!(
                    "the node is not Ready; its logs are in {}/logs",
                    plane.dir().display()
                );
            }
            Ok(())
        }
        Action::Env => {
            let plane = running()?;
            println!(
                "export KUBECONFIG={}",
                shell_quote(&plane.kubeconfig().to_string_lossy())
            );
            println!(
                "export {}={}",
                shared::DIR_ENV,
                shell_quote(&plane.dir().to_string_lossy())
            );
            Ok(())
        }
    }
}

fn running() -> Result<ControlPlane> {
    shared::shared_environment()?.ok_or_else(|| gitops_testenv::Error::NoneRunning.into())
}

fn print_status(plane: &ControlPlane) {
    let info = plane.info();
    println!("kubernetes  v{}", info.kubernetes_version);
    println!("server      {}", info.server);
    println!("etcd        {}", info.etcd);
    println!("directory   {}", plane.dir().display());
    println!("kubeconfig  {}", plane.kubeconfig().display());
    if let Some(node) = &info.node {
        let ready = if plane.is_node_ready() {
            "Ready"
        } else {
            "NotReady"
        };
        println!("node        {node} {ready}");
    }
    for process in plane.processes() {
        let pid = process
            .pid
            .map_or_else(|| "-".to_owned(), |pid| pid.to_string());
        let state = if process.running {
            "running"
        } else {
            "stopped"
        };
        println!("{:<24}pid {pid:<8} {state}", process.name);
    }
}

/// One line per environment found, whoever started it: an unwatched one without users is a
/// leftover, what `down --all` is for.
fn print_all(found: &[shared::FoundEnvironment]) {
    println!(
        "{:<44} {:>8}  {:<10} {:<8} USERS",
        "ENVIRONMENT", "AGE", "STATE", "KIND"
    );
    for env in found {
        let age = env.age.map_or_else(|| "?".to_owned(), short_age);
        let state = if env.running { "running" } else { "stopped" };
        let kind = match (env.shared, env.watched) {
            (true, true) => "leased",
            (true, false) => "shared",
            (false, true) => "private",
            (false, false) => "unwatched",
        };
        let users = if env.users.is_empty() {
            "-".to_owned()
        } else {
            env.users
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "{:<44} {age:>8}  {state:<10} {kind:<9} {users}",
            env.dir.display()
        );
    }
    if found.is_empty() {
        println!("(no test environments found)");
    }
}

/// `42s`, `17m`, `3h05m`.
fn short_age(age: std::time::Duration) -> String {
    let seconds = age.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// Single-quotes `text` for POSIX shells.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
