//! The control middleware in front of every API request: request log, concurrency, injected
//! faults and modelled latency.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::accept::{ConnCtl, reset_connection};
use crate::behaviour::{Admission, KeepAliveRace};
use crate::error::ApiError;
use crate::fault::Verdict;
use crate::latency::OutpostWrite;
use crate::log::{Outcome, RequestRecord};
use crate::state::{IgnoredQuery, Shared, lock};

fn injected(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        axum::Json(json!({"detail": format!("Injected fault: {}", status.as_u16())})),
    )
        .into_response()
}

fn empty(status: u16) -> Response {
    StatusCode::from_u16(status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

/// The answer authentik 2025.12.4 gave a request on a kept-alive connection it was closing.
fn closing_empty_method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::CONNECTION, "close")],
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
pub(crate) async fn control(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_double/") {
        return next.run(req).await;
    }
    let _in_flight = shared.concurrency.enter();
    let started = Instant::now();
    let ctl = req.extensions().get::<Arc<ConnCtl>>().cloned();
    let method = req.method().as_str().to_owned();
    let record = RequestRecord {
        seq: lock(&shared.log).next_seq(),
        template: req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| path.clone(), |matched| matched.as_str().to_owned()),
        query: req.uri().query().map(str::to_owned),
        ignored_query: Vec::new(),
        status: None,
        outcome: Outcome::Responded,
        started_ms: u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        duration_ms: 0,
        method: method.clone(),
        path: path.clone(),
    };
    if let Some(connection) = &ctl {
        let admission = lock(&shared.workers).admit(&mut lock(&connection.state), started);
        match admission {
            Admission::Serve => {}
            Admission::KeepAliveExpired(KeepAliveRace::EmptyMethodNotAllowed) => {
                let response = closing_empty_method_not_allowed();
                shared.record(record, started, Some(405), Outcome::KeepAliveExpired);
                return response;
            }
            Admission::KeepAliveExpired(KeepAliveRace::Reset) => {
                shared.record(record, started, None, Outcome::KeepAliveExpired);
                return reset_connection(ctl).await;
            }
            Admission::WorkerRecycled => {
                shared.record(record, started, None, Outcome::WorkerRecycled);
                return reset_connection(ctl).await;
            }
        }
    }
    let verdict = lock(&shared.faults).decide(&method, &path);
    let (extra_latency, drop_response) = match verdict {
        Verdict::Handle {
            extra_latency,
            drop_response,
            delete_providers,
        } => {
            let mut model = shared.model();
            for provider in delete_providers {
                model.delete_provider(provider);
            }
            (extra_latency, drop_response)
        }
        Verdict::Reset => {
            shared.record(record, started, None, Outcome::Reset);
            return reset_connection(ctl).await;
        }
        other => {
            let response = match other {
                Verdict::Down(status) => proxy_down(status),
                Verdict::Fail {
                    status,
                    empty_body: true,
                } => empty(status),
                Verdict::Fail { status, .. } => injected(status),
                Verdict::RateLimit(secs) => throttled(secs),
                _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            };
            shared.record(
                record,
                started,
                Some(response.status().as_u16()),
                Outcome::Responded,
            );
            idle_from_now(ctl.as_deref());
            return response;
        }
    };

    let response = next.run(req).await;
    let outpost_write = response.extensions().get::<OutpostWrite>().copied();
    let mut record = record;
    if let Some(IgnoredQuery(ignored)) = response.extensions().get::<IgnoredQuery>() {
        record.ignored_query.clone_from(ignored);
    }
    let delay = lock(&shared.latency).latency_for(&record.method, &record.template, outpost_write)
        + extra_latency;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = Some(response.status().as_u16());
    if drop_response {
        shared.record(record, started, status, Outcome::DroppedAfterWrite);
        return reset_connection(ctl).await;
    }
    shared.record(record, started, status, Outcome::Responded);
    idle_from_now(ctl.as_deref());
    response
}

/// The connection is idle from now on (its answer is on the way).
fn idle_from_now(ctl: Option<&ConnCtl>) {
    if let Some(connection) = ctl {
        lock(&connection.state).answered(Instant::now());
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::Detail(StatusCode::NOT_FOUND, "Not found.".to_owned())
}
