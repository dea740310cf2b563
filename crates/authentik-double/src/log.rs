//! Request log and counters that tests and benchmarks read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A response was sent (`status` holds it).
    Responded,
    /// The connection was reset before handling (fault or down).
    Reset,
    /// The request was handled (state changed) but the response was dropped.
    DroppedAfterWrite,
    /// It reused a kept-alive connection the server had closed for idleness (server
    /// behaviour): not handled; reset or answered an empty 405.
    KeepAliveExpired,
    /// Its connection belonged to a recycled worker (server behaviour): reset, not handled.
    WorkerRecycled,
}

/// One API request as the double saw it. Admin (`/_double/`) requests are not logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// 0-based arrival order.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Raw path, e.g. `/api/v3/providers/proxy/3/`.
    pub path: String,
    /// Route template, e.g. `/api/v3/providers/proxy/{id}/` (the raw path when unrouted).
    pub template: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Query parameters a list ignored because the endpoint does not declare them (as
    /// authentik does, answering with every object).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_query: Vec<String>,
    /// Status sent; for `DroppedAfterWrite` the status the handler produced.
    pub status: Option<u16>,
    /// How it ended.
    pub outcome: Outcome,
    /// Arrival time, milliseconds since the double started.
    pub started_ms: u64,
    /// Time spent in the double, including modelled latency, in milliseconds.
    pub duration_ms: u64,
}

/// Aggregate counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Requests by `"METHOD template"`.
    pub counts: BTreeMap<String, u64>,
    /// Total API requests.
    pub total: u64,
    /// Requests in flight right now.
    pub in_flight: usize,
    /// Highest number of API requests in flight at once since start (or the last reset).
    pub peak_in_flight: usize,
}

#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    pub(crate) records: Vec<RequestRecord>,
    next_seq: u64,
}

impl RequestLog {
    pub(crate) fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub(crate) fn push(&mut self, record: RequestRecord) {
        // Keep arrival order even when requests finish out of order.
        let at = self.records.partition_point(|r| r.seq < record.seq);
        self.records.insert(at, record);
    }
}

/// Counts requests in flight and remembers the peak.
#[derive(Debug, Default)]
pub(crate) struct Concurrency {
    current: AtomicUsize,
    peak: AtomicUsize,
}

impl Concurrency {
    pub(crate) fn enter(&self) -> InFlight<'_> {
        let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::SeqCst)
    }

    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    pub(crate) fn reset_peak(&self) {
        self.peak.store(self.current(), Ordering::SeqCst);
    }
}

/// Decrements the in-flight count when the request ends, also when its future is dropped.
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a Concurrency);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::SeqCst);
    }
}
