//! The unauthenticated `/_double/` admin API that out-of-process tests, the demo and the
//! benchmarks drive the double with.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::behaviour::Workers;
use crate::error::ApiError;
use crate::fault::{DownMode, Fault, FaultSet};
use crate::model::Model;
use crate::state::{Shared, lock};

pub(crate) fn admin_router(shared: Arc<Shared>) -> Router {
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
        .route("/_double/server", post(admin_server_behaviour))
        .route("/_double/state", get(admin_state))
        .route("/_double/stats", get(admin_stats))
        .route("/_double/reset", post(admin_reset))
        .with_state(shared)
}

fn bad_request(error: serde_json::Error) -> ApiError {
    ApiError::Detail(StatusCode::BAD_REQUEST, error.to_string())
}

fn admin_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(bad_request)
}

async fn admin_requests(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(lock(&shared.log).records.clone()).into_response()
}

async fn admin_clear_requests(State(shared): State<Arc<Shared>>) -> StatusCode {
    lock(&shared.log).records.clear();
    StatusCode::NO_CONTENT
}

async fn admin_faults(State(shared): State<Arc<Shared>>) -> Response {
    let faults = lock(&shared.faults);
    axum::Json(json!({"faults": faults.faults, "down": faults.down})).into_response()
}

/// Body: one fault or a list of faults.
async fn admin_inject(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let value: Value = admin_json(&body)?;
    let faults: Vec<Fault> = match value {
        Value::Array(_) => serde_json::from_value(value),
        other => serde_json::from_value(other).map(|fault| vec![fault]),
    }
    .map_err(bad_request)?;
    lock(&shared.faults).faults.extend(faults);
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    lock(&shared.faults).faults.clear();
    StatusCode::NO_CONTENT
}

/// Body: `{"down": true|false}` (reset mode) or a `DownMode` (`{"mode": "status", "status": 503}`).
async fn admin_down(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let value: Value = admin_json(&body)?;
    let mode = match value.get("down").and_then(Value::as_bool) {
        Some(true) => DownMode::Reset,
        Some(false) => DownMode::Up,
        None => serde_json::from_value(value).map_err(bad_request)?,
    };
    lock(&shared.faults).down = mode;
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_latency(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    *lock(&shared.latency) = admin_json(&body)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body: a `ServerBehaviour` (`{"keep_alive_ms": 2000, "recycle_after": 1000}`).
async fn admin_server_behaviour(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    lock(&shared.workers).behaviour = admin_json(&body)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn admin_state(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.model().snapshot()).into_response()
}

async fn admin_stats(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.stats()).into_response()
}

/// Back to a freshly seeded server: state, faults, server behaviour, log and peak concurrency.
async fn admin_reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    *shared.model() = Model::seeded(shared.version, shared.seed);
    *lock(&shared.workers) = Workers::default();
    *lock(&shared.faults) = FaultSet::default();
    lock(&shared.log).records.clear();
    shared.concurrency.reset_peak();
    StatusCode::NO_CONTENT
}
