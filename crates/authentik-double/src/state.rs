//! What the API handlers, the control middleware, the admin API and the test handle share.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::behaviour::Workers;
use crate::config::{ApiVersion, DoubleConfig};
use crate::error::ApiError;
use crate::fault::FaultSet;
use crate::latency::LatencyModel;
use crate::list::{ListOpts, ListSpec, Query, ignored_parameters, paginate};
use crate::log::{Concurrency, Outcome, RequestLog, RequestRecord, Stats};
use crate::model::Model;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test must not poison the double for the rest of the test.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Query parameters a list answer ignored, for the request log.
#[derive(Debug, Clone)]
pub(crate) struct IgnoredQuery(pub(crate) Vec<String>);

/// Everything the handlers and the handle share. One mutex per concern; the model's mutex
/// makes every API request linearizable.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) model: Mutex<Model>,
    pub(crate) faults: Mutex<FaultSet>,
    pub(crate) log: Mutex<RequestLog>,
    pub(crate) latency: Mutex<LatencyModel>,
    pub(crate) concurrency: Concurrency,
    pub(crate) workers: Mutex<Workers>,
    pub(crate) token: String,
    pub(crate) version: ApiVersion,
    pub(crate) max_page_size: usize,
    pub(crate) seed: u64,
    pub(crate) started: Instant,
}

impl Shared {
    pub(crate) fn new(config: &DoubleConfig) -> Self {
        Shared {
            model: Mutex::new(Model::seeded(config.api_version, config.seed)),
            faults: Mutex::new(FaultSet::default()),
            log: Mutex::new(RequestLog::default()),
            latency: Mutex::new(config.latency),
            concurrency: Concurrency::default(),
            workers: Mutex::new(Workers::default()),
            token: config.token.clone(),
            version: config.api_version,
            max_page_size: config.max_page_size,
            seed: config.seed,
            started: Instant::now(),
        }
    }

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
        let query = Query::parse(raw_query.as_deref());
        let page = paginate(items, &query, spec, &opts)?;
        let ignored = IgnoredQuery(ignored_parameters(&query, spec));
        Ok((axum::Extension(ignored), axum::Json(page)).into_response())
    }

    pub(crate) fn stats(&self) -> Stats {
        let log = lock(&self.log);
        let mut counts = std::collections::BTreeMap::new();
        for record in &log.records {
            *counts
                .entry(format!("{} {}", record.method, record.template))
                .or_insert(0) += 1;
        }
        Stats {
            counts,
            total: log.records.len() as u64,
            in_flight: self.concurrency.current(),
            peak_in_flight: self.concurrency.peak(),
        }
    }

    pub(crate) fn record(
        &self,
        mut record: RequestRecord,
        started: Instant,
        status: Option<u16>,
        outcome: Outcome,
    ) {
        record.status = status;
        record.outcome = outcome;
        record.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        lock(&self.log).push(record);
    }
}
