//! Starting the double, and the handle in-process tests hold: address, request log, faults,
//! latency and direct state access.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::middleware;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::accept::accept_loop;
use crate::admin::admin_router;
use crate::behaviour::ServerBehaviour;
use crate::config::DoubleConfig;
use crate::control::{control, not_found};
use crate::fault::{DownMode, Fault};
use crate::latency::LatencyModel;
use crate::log::{Outcome, RequestRecord, Stats};
use crate::model::{Model, Outpost, Provider};
use crate::state::{Shared, lock};

/// Entry point of the double.
#[derive(Debug)]
pub struct AuthentikDouble;

impl AuthentikDouble {
    /// Bind and serve in the current tokio runtime until the handle is dropped or shut down.
    pub async fn start(config: DoubleConfig) -> io::Result<DoubleHandle> {
        let shared = Arc::new(Shared::new(&config));
        let listen = config
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let router = crate::api::router(shared.clone())
            .merge(admin_router(shared.clone()))
            .merge(crate::outpost_auth::router(shared.clone(), addr))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(shared.clone(), control));
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, router, rx));
        Ok(DoubleHandle {
            shared,
            addr,
            shutdown: tx,
            task: Some(task),
        })
    }
}

/// A running double. Dropping it stops the server (in-flight requests get ~2 s to finish).
#[derive(Debug)]
pub struct DoubleHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Drop for DoubleHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl DoubleHandle {
    /// Bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (without `/api/v3`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/api/v3`.
    pub fn api_url(&self) -> String {
        format!("{}/api/v3", self.base_url())
    }

    /// The admin API token the double accepts.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Stop accepting, let in-flight requests finish, and wait for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    // ---- request log and stats

    /// Every API request so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).records.clone()
    }

    /// Forget the request log.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).records.clear();
    }

    /// Requests with `method` whose raw path starts with `path_prefix`
    /// (e.g. `count("PATCH", "/api/v3/outposts/instances/")`).
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        lock(&self.shared.log)
            .records
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.starts_with(path_prefix))
            .count()
    }

    /// Writes (POST/PUT/PATCH/DELETE) so far.
    pub fn write_count(&self) -> usize {
        ["POST", "PUT", "PATCH", "DELETE"]
            .iter()
            .map(|method| self.count(method, "/api/v3/"))
            .sum()
    }

    /// Counts by method and template, and concurrency.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Highest number of API requests in flight at once.
    pub fn peak_concurrency(&self) -> usize {
        self.shared.concurrency.peak()
    }

    /// Start measuring peak concurrency afresh.
    pub fn reset_peak_concurrency(&self) {
        self.shared.concurrency.reset_peak();
    }

    // ---- faults and latency

    /// Add a fault.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).faults.push(fault);
    }

    /// Active faults (counted ones disappear when used up).
    pub fn faults(&self) -> Vec<Fault> {
        lock(&self.shared.faults).faults.clone()
    }

    /// Remove every fault (not the down switch).
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).faults.clear();
    }

    /// `true`: unreachable, every API request's connection is reset (what a client sees when
    /// authentik is gone and nothing answers for it). `false`: back up.
    pub fn set_down(&self, down: bool) {
        self.set_down_mode(if down { DownMode::Reset } else { DownMode::Up });
    }

    /// Choose how the double is down, e.g. `DownMode::Status { status: 502 }` for authentik
    /// gone behind a reverse proxy that still answers.
    pub fn set_down_mode(&self, mode: DownMode) {
        lock(&self.shared.faults).down = mode;
    }

    /// Imitate a real server's connection handling (keep-alive expiry, worker recycling).
    pub fn set_server_behaviour(&self, behaviour: ServerBehaviour) {
        lock(&self.shared.workers).behaviour = behaviour;
    }

    /// API requests that ended with `outcome` so far.
    pub fn count_outcome(&self, outcome: Outcome) -> usize {
        lock(&self.shared.log)
            .records
            .iter()
            .filter(|record| record.outcome == outcome)
            .count()
    }

    /// Change the latency model while running.
    pub fn set_latency(&self, model: LatencyModel) {
        *lock(&self.shared.latency) = model;
    }

    // ---- state access for test setup and inspection

    /// Read or change the state directly (no validation: use it to simulate drift or another
    /// admin). The API lock is held while `change` runs.
    pub fn with_state<R>(&self, change: impl FnOnce(&mut Model) -> R) -> R {
        change(&mut self.shared.model())
    }

    /// Everything, rendered as the API would answer.
    pub fn snapshot(&self) -> Value {
        self.shared.model().snapshot()
    }

    /// All providers of every type.
    pub fn providers(&self) -> Vec<Provider> {
        self.shared.model().providers.values().cloned().collect()
    }

    /// A provider by pk.
    pub fn provider(&self, pk: i64) -> Option<Provider> {
        self.shared.model().providers.get(&pk).cloned()
    }

    /// A provider by exact name.
    pub fn provider_by_name(&self, name: &str) -> Option<Provider> {
        self.shared
            .model()
            .providers
            .values()
            .find(|provider| provider.name == name)
            .cloned()
    }

    /// Edit a provider by hand (drift). Returns false if it does not exist.
    pub fn edit_provider(&self, pk: i64, edit: impl FnOnce(&mut Provider)) -> bool {
        self.shared
            .model()
            .providers
            .get_mut(&pk)
            .map(edit)
            .is_some()
    }

    /// Create an OAuth2 provider holding `name` (another provider type); returns its pk.
    pub fn create_foreign_provider(&self, name: &str) -> i64 {
        self.shared.model().create_foreign_provider(name)
    }

    /// Application slugs.
    pub fn application_slugs(&self) -> Vec<String> {
        self.shared
            .model()
            .applications
            .iter()
            .map(|a| a.slug.clone())
            .collect()
    }

    /// An outpost by uuid.
    pub fn outpost(&self, uuid: Uuid) -> Option<Outpost> {
        self.shared
            .model()
            .outposts
            .iter()
            .find(|outpost| outpost.pk == uuid)
            .cloned()
    }

    /// The embedded outpost's uuid.
    pub fn embedded_outpost_uuid(&self) -> Uuid {
        self.shared.model().embedded_outpost().unwrap_or_default()
    }

    /// The embedded outpost's provider list.
    pub fn embedded_outpost_providers(&self) -> Vec<i64> {
        let uuid = self.embedded_outpost_uuid();
        self.outpost(uuid)
            .map(|outpost| outpost.providers)
            .unwrap_or_default()
    }

    /// Overwrite an outpost's providers like another admin would. Returns false if unknown.
    pub fn set_outpost_providers(&self, uuid: Uuid, providers: Vec<i64>) -> bool {
        let mut model = self.shared.model();
        match model.outposts.iter_mut().find(|outpost| outpost.pk == uuid) {
            Some(outpost) => {
                outpost.providers = providers;
                true
            }
            None => false,
        }
    }

    /// A seeded flow's pk by slug.
    pub fn flow_pk(&self, slug: &str) -> Option<Uuid> {
        self.shared.model().flow_pk(slug)
    }
}
