//! What every controller process does the same way: the settings it shares (observability,
//! leadership, logging, scope), one-line start-up errors, and the start-up sequence —
//! observability first, then Kubernetes, then the work, as leader or alone.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    LeaderConfig, LeaderError, LogFormat, Readiness, ReadinessGate, ServeError,
    install_metrics_recorder, run_while_leader, serve, shutdown_on_signal,
};

/// Settings shared by both controllers; flattened into each one's own `Args`.
#[derive(Debug, clap::Args)]
pub struct ProcessArgs {
    /// Watch only this namespace; all namespaces when unset.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Address of /metrics.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Address of /healthz and /readyz.
    #[arg(long, env = "HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    pub health_addr: SocketAddr,

    /// Contend for a Lease so that only one replica works.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the leader-election Lease (default: the controller's name).
    #[arg(long, env = "LEASE_NAME")]
    pub lease_name: Option<String>,

    /// Namespace of the Lease (the Pod's namespace in a cluster).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// This replica's identity in the Lease (the Pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// How long a leader's Lease lasts without renewal.
    #[arg(long, env = "LEASE_DURATION", default_value = "15s", value_parser = duration("LEASE_DURATION"))]
    pub lease_duration: Duration,

    /// Log format: json (cluster) or text.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,

    /// Log filter, RUST_LOG syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
}

impl ProcessArgs {
    /// The watched namespace, if one is set (an empty value means all).
    pub fn watch_namespace(&self) -> Option<String> {
        self.watch_namespace.clone().filter(|n| !n.is_empty())
    }
}

/// A parser of `30s`, `5m`, `1h`, `7d`, `250ms` whose error names the environment variable too
/// (clap names only the flag), since that is what a Deployment sets.
pub fn duration(
    setting: &'static str,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |value| {
        humantime::parse_duration(value.trim()).map_err(|e| {
            format!("{setting}: {value:?} is not a duration like 30s, 5m, 1h or 7d ({e})")
        })
    }
}

/// Parses the command line and environment, and installs logging. A bad setting is one line on
/// stderr and exit code 2 (`--help` and `--version` print as usual).
pub fn start<T: Parser>(process: impl Fn(&T) -> &ProcessArgs) -> Result<T, ExitCode> {
    crate::install_crypto_provider();
    let args = match T::try_parse() {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            let rendered = error.to_string();
            eprintln!(
                "{}",
                rendered.lines().next().unwrap_or("error: invalid settings")
            );
            return Err(ExitCode::from(2));
        }
    };
    let shared = process(&args);
    if let Err(error) = crate::init_logging(shared.log_format, &shared.log_filter) {
        eprintln!("error: {error}");
        return Err(ExitCode::from(2));
    }
    Ok(args)
}

/// The exit code for how `run` ended, logging the error (with its causes) on the way out.
pub fn finish<E: std::fmt::Display>(component: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "{component} stopped with an error");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("cannot reach Kubernetes (in a cluster: the ServiceAccount; outside: KUBECONFIG): {0}")]
    Kubernetes(#[source] kube::Error),
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// A started process: observability is served, Kubernetes reachable; the work has not begun.
/// What a controller's work gets from its process each time it (re)starts.
#[derive(Clone)]
pub struct Work {
    pub client: kube::Client,
    /// Where the work registers its readiness gates, before its future first runs.
    pub readiness: Readiness,
    /// This replica's name (Lease holder, Event reporter).
    pub identity: String,
    /// Cancelled on shutdown, or when leadership is lost.
    pub token: CancellationToken,
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Work")
            .field("identity", &self.identity)
            .field("cancelled", &self.token.is_cancelled())
            .finish_non_exhaustive()
    }
}

pub struct Process {
    pub client: kube::Client,
    pub readiness: Readiness,
    pub identity: String,
    shutdown: CancellationToken,
    leader: Option<LeaderConfig>,
    /// Holds `/readyz` at 503 until [`run`](Self::run) has the work's own gates in place.
    starting: ReadinessGate,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("identity", &self.identity)
            .field("leader", &self.leader)
            .finish_non_exhaustive()
    }
}

impl Process {
    /// Serves `/metrics`, `/healthz` and `/readyz`, listens for SIGTERM, and connects to
    /// Kubernetes. `component` names the default Lease and identity.
    pub async fn start(args: &ProcessArgs, component: &str) -> Result<Self, ProcessError> {
        let metrics = install_metrics_recorder()?;
        let shutdown = shutdown_on_signal();
        let readiness = Readiness::default();
        let starting = readiness.gate("starting");
        serve(
            args.metrics_addr,
            args.health_addr,
            metrics,
            readiness.clone(),
            shutdown.clone(),
        )
        .await?;
        let client = kube::Client::try_default()
            .await
            .map_err(ProcessError::Kubernetes)?;
        let identity = args
            .identity
            .clone()
            .unwrap_or_else(|| format!("{component}-{}", std::process::id()));
        let leader = args.leader_election.then(|| LeaderConfig {
            lease_name: args
                .lease_name
                .clone()
                .unwrap_or_else(|| component.to_owned()),
            namespace: args.lease_namespace.clone(),
            identity: identity.clone(),
            lease_duration: args.lease_duration,
            renew_before: args.lease_duration / 3,
        });
        Ok(Self {
            client,
            readiness,
            identity,
            shutdown,
            leader,
            starting,
        })
    }

    /// Runs `work` until shutdown: only while holding the Lease when leader election is on
    /// (restarting it each time leadership is regained), otherwise once. `work` registers its
    /// readiness gates when called, before its future first runs: the process reports ready
    /// from then on only as those gates say (a standby, having none, is ready).
    pub async fn run<F, Fut>(self, mut work: F) -> Result<(), ProcessError>
    where
        F: FnMut(Work) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (client, readiness, identity) = (
            self.client.clone(),
            self.readiness.clone(),
            self.identity.clone(),
        );
        let mut work = move |token| {
            work(Work {
                client: client.clone(),
                readiness: readiness.clone(),
                identity: identity.clone(),
                token,
            })
        };
        match self.leader {
            Some(leader) => {
                drop(self.starting);
                run_while_leader(self.client, leader, self.shutdown, work).await?;
            }
            None => {
                let mut running = tokio::spawn(work(self.shutdown.clone()));
                drop(self.starting);
                tokio::select! {
                    ended = &mut running => report_panic(ended),
                    _ = self.shutdown.cancelled() => {
                        join_within(running, crate::leader::WORK_STOP_TIMEOUT).await;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Waits for stopped work to end, at most `timeout`; then aborts it, so that no wait inside it
/// (a request to a hung API server, a cache that never fills) can keep the process alive.
pub(crate) async fn join_within(mut work: JoinHandle<()>, timeout: Duration) {
    match tokio::time::timeout(timeout, &mut work).await {
        Ok(ended) => report_panic(ended),
        Err(_) => {
            tracing::warn!(
                ?timeout,
                "controller work did not stop in time after shutdown; abandoning it"
            );
            work.abort();
        }
    }
}

fn report_panic(ended: Result<(), JoinError>) {
    if let Err(error) = ended
        && error.is_panic()
    {
        tracing::error!(%error, "controller work panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_name_the_setting_when_malformed() {
        let parse = duration("CLEANUP_INTERVAL");
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse(" 7d "), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        let error = parse("soon").expect_err("not a duration");
        assert!(error.starts_with("CLEANUP_INTERVAL: \"soon\""), "{error}");
    }

    proptest::proptest! {
        /// Every whole amount of every unit operators write parses to exactly that duration.
        #[test]
        fn whole_units_parse_exactly(amount in 0u64..1_000_000, unit in 0usize..5) {
            let (suffix, seconds) = [("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604800)][unit];
            let parsed = duration("X")(&format!("{amount}{suffix}"));
            proptest::prop_assert_eq!(parsed, Ok(Duration::from_secs(amount * seconds)));
        }

        /// Arbitrary text never panics; it parses or names the setting.
        #[test]
        fn arbitrary_text_is_parsed_or_named(text in ".{0,40}") {
            if let Err(error) = duration("SETTING")(&text) {
                proptest::prop_assert!(error.starts_with("SETTING: "));
            }
        }
    }
}
