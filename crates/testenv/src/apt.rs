//! Debian packages the pinned tools need, installed on first use (a fresh machine has none of
//! them, and nothing may depend on what someone installed by hand).

use std::process::{Command, Stdio};

use crate::error::{Error, IoContext, Result};
use crate::util::FileLock;

/// Installs whichever of `packages` dpkg does not report as installed (`apt-get update` first,
/// since a fresh machine's package lists may be empty). A no-op when all are there.
pub fn ensure_packages(packages: &[String]) -> Result<()> {
    if missing(packages)?.is_empty() {
        return Ok(());
    }
    let _lock = FileLock::acquire(
        &crate::pins::cache_root().join("apt.lock"),
        "another installation of Debian packages",
    )?;
    let missing = missing(packages)?;
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("==> apt-get install {}", missing.join(" "));
    run(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(missing.iter().map(String::as_str));
    run(&install)
}

fn missing(packages: &[String]) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for package in packages {
        let output = Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", package])
            .stderr(Stdio::null())
            .output()
            .context(|| "running dpkg-query (the tools need a Debian-based machine)".to_owned())?;
        if !String::from_utf8_lossy(&output.stdout).ends_with(" installed") {
            missing.push(package.clone());
        }
    }
    Ok(missing)
}

fn run(args: &[&str]) -> Result<()> {
    let command = format!("apt-get {}", args.join(" "));
    let output = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .context(|| format!("running `{command}`"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::CommandOutput {
        command,
        detail: format!(
            "{}; install the packages by hand or run as root",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
    })
}
