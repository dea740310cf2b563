//! The controllers under test, run as their release binaries (separate processes, as in a
//! cluster), so that their memory and CPU are the kernel's figures for them alone.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use crate::procstat::{self, Usage};

/// Which controller binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ServiceDiscovery,
    Cleanup,
}

impl Kind {
    fn binary(self) -> &'static str {
        match self {
            Kind::ServiceDiscovery => "gitops-service-discovery",
            Kind::Cleanup => "gitops-cleanup",
        }
    }
}

/// Where the controller binaries are: `GITOPS_BENCH_BIN_DIR`, else next to this executable
/// (`cargo run --release -p gitops-bench` puts all three in `target/release`).
fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("GITOPS_BENCH_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("locating the bench executable")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("the bench executable has no directory")
}

#[derive(Debug)]
pub struct Controller {
    child: Child,
    pid: u32,
    metrics_port: u16,
    health_port: u16,
    pub log: PathBuf,
}

impl Controller {
    /// Starts `kind` scoped to `namespace` without leader election, JSON logs at `warn`;
    /// `settings` are further environment variables (they win over the defaults).
    pub fn spawn(
        kind: Kind,
        kubeconfig: &Path,
        namespace: &str,
        log_dir: &Path,
        settings: &[(&str, String)],
    ) -> Result<Self> {
        let binary = bin_dir()?.join(kind.binary());
        if !binary.exists() {
            bail!(
                "{} is not built: run `cargo build --release -p {}` (cargo xtask bench does)",
                binary.display(),
                kind.binary()
            );
        }
        let (metrics_port, health_port) =
            (gitops_testenv::free_port()?, gitops_testenv::free_port()?);
        std::fs::create_dir_all(log_dir)?;
        let log = log_dir.join(format!("{}-{}.log", kind.binary(), metrics_port));
        let out = std::fs::File::create(&log)?;
        let mut command = Command::new(&binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            .env("WATCH_NAMESPACE", namespace)
            .env("POD_NAMESPACE", namespace)
            .env("LEADER_ELECTION", "false")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("HEALTH_ADDR", format!("127.0.0.1:{health_port}"));
        for (key, value) in settings {
            command.env(key, value);
        }
        // Experiments without code changes, e.g. `OUTPOST_BATCH_WINDOW=0s,MALLOC_ARENA_MAX=2`.
        for (key, value) in experiment_settings()? {
            command.env(key, value);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("the controller exited at once")?;
        Ok(Self {
            child,
            pid,
            metrics_port,
            health_port,
            log,
        })
    }

    /// Waits until `/readyz` answers 200 (caches synced, authentik reached).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{}/readyz", self.health_port);
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                bail!("controller exited ({status}); see {}", self.log.display());
            }
            if matches!(reqwest::get(&url).await, Ok(r) if r.status().is_success()) {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "controller not ready after {timeout:?}; see {}",
            self.log.display()
        )
    }

    /// The controller's Prometheus text.
    pub async fn metrics(&self) -> Result<String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        Ok(reqwest::get(&url).await?.error_for_status()?.text().await?)
    }

    /// Sum of every sample of `name` (any labels) in the controller's metrics.
    pub async fn metric_sum(&self, name: &str) -> Result<f64> {
        Ok(metric_sum(&self.metrics().await?, name))
    }

    pub fn usage(&self) -> Result<Usage> {
        procstat::usage(self.pid)
    }

    /// SIGKILL, as a crashed Pod, and reap it.
    pub async fn kill(mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }
}

/// Sum of the samples of `name` (exactly that metric, any labels) in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Samples of `name` (any labels) whose value is at least `at_least`.
pub fn count_samples_at_least(text: &str, name: &str, at_least: f64) -> usize {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .filter(|value| *value >= at_least)
        .count()
}

/// Settings `GITOPS_BENCH_CONTROLLER_ENV` (`K=V,…`) adds to every controller started.
pub fn experiment_settings() -> Result<Vec<(String, String)>> {
    let extra = std::env::var("GITOPS_BENCH_CONTROLLER_ENV").unwrap_or_default();
    extra
        .split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .with_context(|| format!("GITOPS_BENCH_CONTROLLER_ENV: {pair:?} is not KEY=VALUE"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_counts_samples() {
        let text =
            "# TYPE a counter\na_total{x=\"1\"} 2\na_total{x=\"2\"} 3\na_total_more 100\nb 1\n";
        assert_eq!(metric_sum(text, "a_total"), 5.0);
        assert_eq!(metric_sum(text, "b"), 1.0);
        assert_eq!(count_samples_at_least(text, "a_total", 3.0), 1);
    }
}
