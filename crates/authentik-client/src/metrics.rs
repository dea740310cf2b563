//! Metric names (one place, for alert rules and the dashboard) and their recording.

use std::time::Duration;

use http::Method;

/// Names of the metrics this crate emits through the `metrics` facade.
///
/// Labels: `endpoint` is the path template relative to `/api/v3` (`/providers/proxy/{id}/`),
/// never a path with ids; `method` is the HTTP method; `status` is the HTTP status code or
/// `error` when no response arrived; `operation` is `authentik <METHOD> <endpoint>`.
pub mod metric_names {
    /// Counter of HTTP attempts, retries included. Labels: `endpoint`, `method`, `status`.
    pub const REQUESTS_TOTAL: &str = "gitops_authentik_requests_total";
    /// Histogram of the duration of each HTTP attempt, in seconds. Labels: `endpoint`, `method`.
    pub const REQUEST_DURATION_SECONDS: &str = "gitops_authentik_request_duration_seconds";
    /// Counter of retries (attempts after the first). Label: `operation`.
    pub const RETRY_ATTEMPTS_TOTAL: &str = "gitops_retry_attempts_total";
    /// Counter of retried operations that finally succeeded. Label: `operation`.
    pub const RETRY_SUCCESS_TOTAL: &str = "gitops_retry_success_total";
    /// Counter of retried operations that finally failed. Label: `operation`.
    pub const RETRY_FAILURE_TOTAL: &str = "gitops_retry_failure_total";
    /// Histogram of the total duration of retried operations (all attempts and waits), in
    /// seconds. Label: `operation`.
    pub const RETRY_DURATION_SECONDS: &str = "gitops_retry_duration_seconds";
}

/// Registers units and help texts with the installed recorder. Optional; call it once after
/// installing the exporter so `/metrics` shows `# HELP` lines.
pub fn describe_metrics() {
    use metric_names::*;
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "authentik API requests by endpoint template, method and status"
    );
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "authentik API request latency by endpoint template and method"
    );
    describe_counter!(
        RETRY_ATTEMPTS_TOTAL,
        Unit::Count,
        "Retries of failed operations"
    );
    describe_counter!(
        RETRY_SUCCESS_TOTAL,
        Unit::Count,
        "Retried operations that finally succeeded"
    );
    describe_counter!(
        RETRY_FAILURE_TOTAL,
        Unit::Count,
        "Retried operations that finally failed"
    );
    describe_histogram!(
        RETRY_DURATION_SECONDS,
        Unit::Seconds,
        "Total duration of retried operations"
    );
}

/// One HTTP attempt finished; `status` is `None` when no response arrived.
pub(crate) fn record_request(
    endpoint: &'static str,
    method: &Method,
    status: Option<u16>,
    duration: Duration,
) {
    let status = status.map_or_else(|| "error".to_owned(), |code| code.to_string());
    metrics::counter!(
        metric_names::REQUESTS_TOTAL,
        "endpoint" => endpoint,
        "method" => method.to_string(),
        "status" => status,
    )
    .increment(1);
    metrics::histogram!(
        metric_names::REQUEST_DURATION_SECONDS,
        "endpoint" => endpoint,
        "method" => method.to_string(),
    )
    .record(duration.as_secs_f64());
}

/// A retry is about to happen.
pub(crate) fn record_retry(operation: &str) {
    metrics::counter!(metric_names::RETRY_ATTEMPTS_TOTAL, "operation" => operation.to_owned())
        .increment(1);
}

/// A retried operation ended.
pub(crate) fn record_retried_outcome(operation: &str, succeeded: bool, duration: Duration) {
    let outcome = if succeeded {
        metric_names::RETRY_SUCCESS_TOTAL
    } else {
        metric_names::RETRY_FAILURE_TOTAL
    };
    metrics::counter!(outcome, "operation" => operation.to_owned()).increment(1);
    metrics::histogram!(metric_names::RETRY_DURATION_SECONDS, "operation" => operation.to_owned())
        .record(duration.as_secs_f64());
}
