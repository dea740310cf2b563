//! The HTTP side: a hand-rolled accept loop (so a fault can reset one connection), the
//! control middleware (request log, concurrency, faults, latency), the `/_double/` admin API
//! and the handle tests hold.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use crate::config::{ApiVersion, DoubleConfig, LatencyModel};
use crate::error::ApiError;
use crate::fault::{DownMode, Fault, FaultSet, Verdict};
use crate::list::{ListOpts, ListSpec, Query, paginate};
use crate::log::{Concurrency, Outcome, RequestLog, RequestRecord, Stats};
use crate::model::{Model, Outpost, Provider};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test must not poison the double for the rest of the test.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Provider count of an outpost after a write, for the latency model.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutpostCost(pub usize);

/// Everything the handlers and the handle share. One mutex per concern; the model's mutex
/// makes every API request linearizable.
#[derive(Debug)]
pub(crate) struct Shared {
    model: Mutex<Model>,
    faults: Mutex<FaultSet>,
    log: Mutex<RequestLog>,
    latency: Mutex<LatencyModel>,
    concurrency: Concurrency,
    pub(crate) token: String,
    pub(crate) version: ApiVersion,
    max_page_size: usize,
    seed: u64,
    started: Instant,
}

impl Shared {
    pub(crate) fn model(&self) -> MutexGuard<'_, Model> {
        lock(&self.model)
    }

    /// The shared list pipeline with this double's envelope options.
    pub(crate) fn list(
        &self,
        items: Vec<Value>,
        raw_query: Option<String>,
        spec: &ListSpec,
        autocomplete: Option<Value>,
    ) -> Result<Response, ApiError> {
        let opts = ListOpts {
            autocomplete: self
                .version
                .has_autocomplete()
                .then(|| autocomplete.unwrap_or_else(|| json!({}))),
            max_page_size: self.max_page_size,
        };
        let page = paginate(items, &Query::parse(raw_query.as_deref()), spec, &opts)?;
        Ok(axum::Json(page).into_response())
    }

    fn stats(&self) -> Stats {
        let log = lock(&self.log);
        let mut counts = std::collections::BTreeMap::new();
        for r in &log.records {
            *counts
                .entry(format!("{} {}", r.method, r.template))
                .or_insert(0) += 1;
        }
        Stats {
            counts,
            total: log.records.len() as u64,
            in_flight: self.concurrency.current(),
            peak_in_flight: self.concurrency.peak(),
        }
    }

    fn record(
        &self,
        mut rec: RequestRecord,
        started: Instant,
        status: Option<u16>,
        outcome: Outcome,
    ) {
        rec.status = status;
        rec.outcome = outcome;
        rec.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        lock(&self.log).push(rec);
    }
}

// ---------------------------------------------------------------- per-connection control

/// Lets a request kill its own connection.
#[derive(Debug, Default)]
pub(crate) struct ConnCtl {
    killed: AtomicBool,
    notify: Notify,
}

impl ConnCtl {
    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// The TCP stream; on drop after a kill it sets SO_LINGER=0 so the peer sees a real RST.
#[derive(Debug)]
struct KillableIo {
    inner: TcpStream,
    ctl: Arc<ConnCtl>,
}

impl Drop for KillableIo {
    fn drop(&mut self) {
        if self.ctl.killed.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for KillableIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Reset the request's connection: the response future never completes.
async fn reset_connection(ctl: Option<Arc<ConnCtl>>) -> Response {
    match ctl {
        Some(ctl) => {
            ctl.kill();
            std::future::pending().await
        }
        // Only reachable when the router is driven without our accept loop.
        None => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// Resolves when shutdown is requested or the handle is gone.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await (it is not Send).
    let _ = rx.wait_for(|down| *down).await.map(|_| ());
}

async fn serve_connection(stream: TcpStream, router: Router, mut shutdown: watch::Receiver<bool>) {
    let ctl = Arc::new(ConnCtl::default());
    let io = TokioIo::new(KillableIo {
        inner: stream,
        ctl: ctl.clone(),
    });
    let req_ctl = ctl.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(req_ctl.clone());
            let mut router = router.clone();
            async move { tower::Service::call(&mut router, req).await }
        });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = ctl.notify.notified() => {}
        () = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.as_mut()).await;
        }
    }
}

async fn accept_loop(listener: TcpListener, router: Router, shutdown: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(serve_connection(stream, router.clone(), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(3), drain).await;
    conns.abort_all();
}

// ---------------------------------------------------------------- control middleware

fn injected(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        axum::Json(json!({"detail": format!("Injected fault: {}", status.as_u16())})),
    )
        .into_response()
}

fn proxy_down(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let reason = status.canonical_reason().unwrap_or("Error");
    let html = format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
        code = status.as_u16()
    );
    (status, [(header::CONTENT_TYPE, "text/html")], html).into_response()
}

fn throttled(retry_after_secs: u64) -> Response {
    let detail =
        format!("Request was throttled. Expected available in {retry_after_secs} seconds.");
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, retry_after_secs.to_string())],
        axum::Json(json!({ "detail": detail })),
    )
        .into_response()
}

/// Wraps every API request: log, concurrency, faults, latency.
async fn control(State(sh): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_double/") {
        return next.run(req).await;
    }
    let _in_flight = sh.concurrency.enter();
    let started = Instant::now();
    let ctl = req.extensions().get::<Arc<ConnCtl>>().cloned();
    let method = req.method().as_str().to_owned();
    let rec = RequestRecord {
        seq: lock(&sh.log).next_seq(),
        template: req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| path.clone(), |m| m.as_str().to_owned()),
        query: req.uri().query().map(str::to_owned),
        status: None,
        outcome: Outcome::Responded,
        started_ms: u64::try_from(sh.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        duration_ms: 0,
        method: method.clone(),
        path: path.clone(),
    };
    let verdict = lock(&sh.faults).decide(&method, &path);
    let (extra_latency, drop_response) = match verdict {
        Verdict::Handle {
            extra_latency,
            drop_response,
        } => (extra_latency, drop_response),
        Verdict::Reset => {
            sh.record(rec, started, None, Outcome::Reset);
            return reset_connection(ctl).await;
        }
        other => {
            let response = match other {
                Verdict::Down(status) => proxy_down(status),
                Verdict::Fail(status) => injected(status),
                Verdict::RateLimit(secs) => throttled(secs),
                _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            };
            sh.record(
                rec,
                started,
                Some(response.status().as_u16()),
                Outcome::Responded,
            );
            return response;
        }
    };

    let response = next.run(req).await;
    let cost = response.extensions().get::<OutpostCost>().map(|c| c.0);
    let delay = lock(&sh.latency).latency_for(&rec.method, &rec.template, cost) + extra_latency;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = Some(response.status().as_u16());
    if drop_response {
        sh.record(rec, started, status, Outcome::DroppedAfterWrite);
        return reset_connection(ctl).await;
    }
    sh.record(rec, started, status, Outcome::Responded);
    response
}

async fn not_found() -> ApiError {
    ApiError::Detail(StatusCode::NOT_FOUND, "Not found.".to_owned())
}

// ---------------------------------------------------------------- admin API (/_double/)

fn admin_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/_double/requests",
            get(admin_requests).delete(admin_clear_requests),
        )
        .route(
            "/_double/faults",
            get(admin_faults)
                .post(admin_inject)
                .delete(admin_clear_faults),
        )
        .route("/_double/down", post(admin_down))
        .route("/_double/latency", post(admin_latency))
        .route("/_double/state", get(admin_state))
        .route("/_double/stats", get(admin_stats))
        .route("/_double/reset", post(admin_reset))
        .with_state(shared)
}

fn admin_json<T: serde::de::DeserializeOwned>(b: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::Detail(StatusCode::BAD_REQUEST, e.to_string()))
}

async fn admin_requests(State(sh): State<Arc<Shared>>) -> Response {
    axum::Json(lock(&sh.log).records.clone()).into_response()
}

async fn admin_clear_requests(State(sh): State<Arc<Shared>>) -> StatusCode {
    lock(&sh.log).records.clear();
    StatusCode::NO_CONTENT
}

async fn admin_faults(State(sh): State<Arc<Shared>>) -> Response {
    let f = lock(&sh.faults);
    axum::Json(json!({"faults": f.faults, "down": f.down})).into_response()
}

/// Body: one fault or a list of faults.
async fn admin_inject(State(sh): State<Arc<Shared>>, b: Bytes) -> Result<StatusCode, ApiError> {
    let value: Value = admin_json(&b)?;
    let faults: Vec<Fault> = match value {
        Value::Array(_) => serde_json::from_value(value),
        other => serde_json::from_value(other).map(|f| vec![f]),
    }
    .map_err(|e| ApiError::Detail(StatusCode::BAD_REQUEST, e.to_string()))?;
    lock(&sh.faults).faults.extend(faults);
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_clear_faults(State(sh): State<Arc<Shared>>) -> StatusCode {
    lock(&sh.faults).faults.clear();
    StatusCode::NO_CONTENT
}

/// Body: `{"down": true|false}` (reset mode) or a `DownMode` (`{"mode": "status", "status": 503}`).
async fn admin_down(State(sh): State<Arc<Shared>>, b: Bytes) -> Result<StatusCode, ApiError> {
    let value: Value = admin_json(&b)?;
    let mode = match value.get("down").and_then(Value::as_bool) {
        Some(true) => DownMode::Reset,
        Some(false) => DownMode::Up,
        None => serde_json::from_value(value)
            .map_err(|e| ApiError::Detail(StatusCode::BAD_REQUEST, e.to_string()))?,
    };
    lock(&sh.faults).down = mode;
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_latency(State(sh): State<Arc<Shared>>, b: Bytes) -> Result<StatusCode, ApiError> {
    *lock(&sh.latency) = admin_json(&b)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_state(State(sh): State<Arc<Shared>>) -> Response {
    axum::Json(sh.model().snapshot()).into_response()
}

async fn admin_stats(State(sh): State<Arc<Shared>>) -> Response {
    axum::Json(sh.stats()).into_response()
}

/// Back to a freshly seeded server: state, faults, log and peak concurrency.
async fn admin_reset(State(sh): State<Arc<Shared>>) -> StatusCode {
    *sh.model() = Model::seeded(sh.version, sh.seed);
    *lock(&sh.faults) = FaultSet::default();
    lock(&sh.log).records.clear();
    sh.concurrency.reset_peak();
    StatusCode::NO_CONTENT
}

// ---------------------------------------------------------------- start and handle

/// Entry point of the double.
#[derive(Debug)]
pub struct AuthentikDouble;

impl AuthentikDouble {
    /// Bind and serve in the current tokio runtime until the handle is dropped or shut down.
    pub async fn start(config: DoubleConfig) -> io::Result<DoubleHandle> {
        let shared = Arc::new(Shared {
            model: Mutex::new(Model::seeded(config.api_version, config.seed)),
            faults: Mutex::new(FaultSet::default()),
            log: Mutex::new(RequestLog::default()),
            latency: Mutex::new(config.latency),
            concurrency: Concurrency::default(),
            token: config.token,
            version: config.api_version,
            max_page_size: config.max_page_size,
            seed: config.seed,
            started: Instant::now(),
        });
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
            .map(|m| self.count(m, "/api/v3/"))
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

    /// Change the latency model while running.
    pub fn set_latency(&self, model: LatencyModel) {
        *lock(&self.shared.latency) = model;
    }

    // ---- state access for test setup and inspection

    /// Read or change the state directly (no validation: use it to simulate drift or another
    /// admin). The API lock is held while `f` runs.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut Model) -> R) -> R {
        f(&mut self.shared.model())
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
            .find(|p| p.name == name)
            .cloned()
    }

    /// Edit a provider by hand (drift). Returns false if it does not exist.
    pub fn edit_provider(&self, pk: i64, f: impl FnOnce(&mut Provider)) -> bool {
        self.shared.model().providers.get_mut(&pk).map(f).is_some()
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
            .find(|o| o.pk == uuid)
            .cloned()
    }

    /// The embedded outpost's uuid.
    pub fn embedded_outpost_uuid(&self) -> Uuid {
        self.shared.model().embedded_outpost().unwrap_or_default()
    }

    /// The embedded outpost's provider list.
    pub fn embedded_outpost_providers(&self) -> Vec<i64> {
        let uuid = self.embedded_outpost_uuid();
        self.outpost(uuid).map(|o| o.providers).unwrap_or_default()
    }

    /// Overwrite an outpost's providers like another admin would. Returns false if unknown.
    pub fn set_outpost_providers(&self, uuid: Uuid, providers: Vec<i64>) -> bool {
        let mut m = self.shared.model();
        match m.outposts.iter_mut().find(|o| o.pk == uuid) {
            Some(o) => {
                o.providers = providers;
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
