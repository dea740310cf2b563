//! Resource use of a process as the kernel reports it (`/proc`), never estimated.

use std::sync::OnceLock;

use anyhow::{Context, Result};
use serde::Serialize;

/// Memory and CPU of one process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Usage {
    /// Resident set size now (`VmRSS`), MiB.
    pub rss_mib: f64,
    /// Peak resident set size since start (`VmHWM`), MiB.
    pub peak_rss_mib: f64,
    /// User + system CPU time since start, seconds.
    pub cpu_seconds: f64,
}

pub fn usage(pid: u32) -> Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    Ok(Usage {
        rss_mib: status_kib(&status, "VmRSS:").context("VmRSS")? / 1024.0,
        peak_rss_mib: status_kib(&status, "VmHWM:").context("VmHWM")? / 1024.0,
        cpu_seconds: cpu_ticks(&stat).context("utime/stime in /proc/<pid>/stat")? / clock_ticks(),
    })
}

/// A `kB` field of `/proc/<pid>/status`.
fn status_kib(status: &str, field: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// utime + stime (fields 14 and 15) of `/proc/<pid>/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its closing parenthesis.
fn cpu_ticks(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field k is at index k - 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux when it cannot be asked).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let status = "Name:\tx\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(10240.0));
        assert_eq!(status_kib(status, "VmHWM:"), Some(20480.0));
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(cpu_ticks(stat), Some(300.0));
    }

    #[test]
    fn reads_this_process() {
        let me = usage(std::process::id()).expect("own /proc entry");
        assert!(me.rss_mib > 0.0 && me.peak_rss_mib >= me.rss_mib);
    }
}
