use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Histogram buckets (seconds) for every `*_duration_seconds` metric: from a fast authentik
/// call to a slow cleanup cycle.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot install the Prometheus recorder: {0}")]
    Recorder(#[from] BuildError),
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
}

/// Installs the process-wide Prometheus recorder that the `metrics` macros write to.
pub fn install_metrics_recorder() -> Result<PrometheusHandle, ServeError> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), DURATION_BUCKETS)?
        .install_recorder()?)
}

/// Named conditions that must all hold before `/readyz` answers 200 (e.g. "caches synced",
/// "authentik reached once").
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    gates: Arc<Mutex<BTreeMap<&'static str, bool>>>,
    /// What blocks the gates and needs a person, by resource (see `ResourceHealth`).
    problems: Arc<Mutex<BTreeMap<String, String>>>,
}

/// One condition of [`Readiness`], starting not ready. Dropping it removes the condition, so
/// a replica that stops leading (and drops its gates) is ready again as a standby.
#[derive(Debug)]
pub struct ReadinessGate {
    name: &'static str,
    readiness: Readiness,
}

impl Readiness {
    pub fn gate(&self, name: &'static str) -> ReadinessGate {
        self.gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, false);
        ReadinessGate {
            name,
            readiness: self.clone(),
        }
    }

    /// The gates that are not open yet; empty means ready.
    pub fn waiting_for(&self) -> Vec<&'static str> {
        self.gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, open)| !**open)
            .map(|(name, _)| *name)
            .collect()
    }

    /// Problems a person must fix, one line each (see `ResourceHealth`).
    pub fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn set_problem(&self, key: &str, problem: Option<String>) {
        let mut problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        match problem {
            Some(problem) => problems.insert(key.to_owned(), problem),
            None => problems.remove(key),
        };
    }
}

impl ReadinessGate {
    pub fn set(&self, open: bool) {
        self.readiness
            .gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.name, open);
    }
}

impl Drop for ReadinessGate {
    fn drop(&mut self) {
        self.readiness
            .gates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(self.name);
    }
}

/// Addresses actually bound (useful when asked for port 0).
#[derive(Clone, Copy, Debug)]
pub struct ServingAddrs {
    pub metrics: SocketAddr,
    pub health: SocketAddr,
}

/// Binds `/metrics` and `/healthz` + `/readyz` (separate ports, so a scrape never competes with
/// a probe) and serves them until `shutdown`. Binding happens before this returns, so a port
/// already in use stops start-up with a clear error.
pub async fn serve(
    metrics_addr: SocketAddr,
    health_addr: SocketAddr,
    metrics: PrometheusHandle,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<ServingAddrs, ServeError> {
    let metrics_listener = bind(metrics_addr, "metrics").await?;
    let health_listener = bind(health_addr, "health probes").await?;
    let addrs = ServingAddrs {
        metrics: local_addr(&metrics_listener, metrics_addr),
        health: local_addr(&health_listener, health_addr),
    };

    let metrics_app = Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(metrics.clone());
    let health_app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(readiness);

    spawn_server(metrics_listener, metrics_app, shutdown.clone());
    spawn_server(health_listener, health_app, shutdown.clone());
    // Histograms keep samples until upkeep folds them in; without the exporter's own listener
    // nobody else runs it.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => metrics.run_upkeep(),
            }
        }
    });
    Ok(addrs)
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, what, source })
}

fn local_addr(listener: &TcpListener, requested: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(requested)
}

fn spawn_server(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "observability server stopped with an error");
        }
    });
}

async fn render_metrics(State(handle): State<PrometheusHandle>) -> String {
    handle.render()
}

async fn ready(State(readiness): State<Readiness>) -> Response {
    let waiting = readiness.waiting_for();
    let problems = readiness.problems();
    if waiting.is_empty() && problems.is_empty() {
        (StatusCode::OK, "ready").into_response()
    } else {
        // The problems are why the gates stay closed; they come first so a probe's truncated
        // output still shows them.
        let mut lines = problems;
        if !waiting.is_empty() {
            lines.push(format!("waiting for: {}", waiting.join(", ")));
        }
        (StatusCode::SERVICE_UNAVAILABLE, lines.join("\n")).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probes_and_metrics_are_served() {
        crate::install_crypto_provider();
        let handle = PrometheusBuilder::new().build_recorder().handle();
        let readiness = Readiness::default();
        let caches = readiness.gate("caches synced");
        let readiness_for_drop = readiness.clone();
        let shutdown = CancellationToken::new();
        let addrs = serve(
            "127.0.0.1:0".parse().expect("addr"),
            "127.0.0.1:0".parse().expect("addr"),
            handle,
            readiness,
            shutdown.clone(),
        )
        .await
        .expect("serve");
        let http = reqwest::Client::new();
        let get = |url: String| {
            let http = http.clone();
            async move { http.get(url).send().await.expect("request") }
        };

        let health = get(format!("http://{}/healthz", addrs.health)).await;
        assert_eq!(health.status(), 200);

        let not_ready = get(format!("http://{}/readyz", addrs.health)).await;
        assert_eq!(not_ready.status(), 503);
        assert!(
            not_ready
                .text()
                .await
                .expect("body")
                .contains("caches synced")
        );

        caches.set(true);
        let ready = get(format!("http://{}/readyz", addrs.health)).await;
        assert_eq!(ready.status(), 200);

        let leader_only = readiness_for_drop.gate("authentik reached");
        let waiting = get(format!("http://{}/readyz", addrs.health)).await;
        assert_eq!(waiting.status(), 503);
        drop(leader_only);
        let standby = get(format!("http://{}/readyz", addrs.health)).await;
        assert_eq!(
            standby.status(),
            200,
            "a dropped gate no longer blocks readiness"
        );

        let metrics = get(format!("http://{}/metrics", addrs.metrics)).await;
        assert_eq!(metrics.status(), 200);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_taken_port_is_a_clear_error() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let handle = PrometheusBuilder::new().build_recorder().handle();
        let error = serve(
            addr,
            "127.0.0.1:0".parse().expect("addr"),
            handle,
            Readiness::default(),
            CancellationToken::new(),
        )
        .await
        .expect_err("port in use");
        let message = error.to_string();
        assert!(message.contains(&addr.to_string()), "{message}");
        assert!(message.contains("metrics"), "{message}");
    }
}
