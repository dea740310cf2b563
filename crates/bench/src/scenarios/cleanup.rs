//! Scenario 6: N finished Jobs whose expiries are spread over a window; how late after its
//! expiry each is deleted (seen from our own watch), deletions per second, and API-server
//! requests per deleted Job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::watcher;
use serde::Serialize;

use crate::apiserver::Requests;
use crate::controller::Kind;
use crate::report::{Table, secs};
use crate::setup::{Bench, Latency};
use crate::stats::Summary;

const LAG_METRIC: &str = "gitops_cleanup_job_deletion_lag_seconds";

#[derive(Debug, Serialize)]
struct Row {
    jobs: usize,
    expiry_window_s: u64,
    delete_rate: f64,
    deleted: usize,
    setup_s: f64,
    /// Deletion seen by our watch minus the Job's expiry, seconds.
    lag: Option<Summary>,
    /// Deleted Jobs ÷ time from the first to the last deletion.
    deletions_per_second: f64,
    api_server_requests_per_job: f64,
    api_server_requests_by_kind: Requests,
    /// The controller's own lag figure, as it exports it.
    controller_lag_metric: Vec<String>,
}

pub async fn run(sizes: &[usize], windows: &[u64], delete_rate: f64) -> Result<()> {
    let mut rows = Vec::new();
    for (&n, &window) in sizes.iter().zip(windows) {
        eprintln!("cleanup: {n} Jobs expiring over {window}s, DELETE_RATE={delete_rate}");
        rows.push(measure(n, window, delete_rate).await?);
    }
    let mut table = Table::new(
        "Scenario 6 — cleanup of finished Jobs with staggered expiry",
        &[
            "Jobs",
            "expiry window",
            "DELETE_RATE",
            "deleted",
            "lag p50 s",
            "lag p99 s",
            "lag max s",
            "deletions/s",
            "API req/Job",
        ],
    );
    for row in &rows {
        let lag = |f: fn(&Summary) -> f64| row.lag.as_ref().map_or("-".to_owned(), |s| secs(f(s)));
        table.row(vec![
            row.jobs.to_string(),
            format!("{}s", row.expiry_window_s),
            format!("{}", row.delete_rate),
            row.deleted.to_string(),
            lag(|s| s.p50),
            lag(|s| s.p99),
            lag(|s| s.max),
            format!("{:.1}", row.deletions_per_second),
            format!("{:.2}", row.api_server_requests_per_job),
        ]);
    }
    crate::report::publish("cleanup", &[table], &rows)?;
    Ok(())
}

/// Deletion times by Job name, from a watch.
type Deletions = Arc<Mutex<HashMap<String, SystemTime>>>;

fn watch_deletions(api: Api<Job>) -> (Deletions, tokio::task::JoinHandle<()>) {
    let deletions: Deletions = Arc::default();
    let seen = deletions.clone();
    let task = tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Delete(job)) = event {
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(job.name_any())
                    .or_insert_with(SystemTime::now);
            }
        }
    });
    (deletions, task)
}

async fn measure(n: usize, window_s: u64, delete_rate: f64) -> Result<Row> {
    let bench = Bench::new(&format!("cleanup-{n}"), Latency::Fixed(0)).await?;
    // Completion times lie in the past, spread over the window; the TTL is chosen after the
    // (slow) setup so that the first expiry falls shortly after the controller starts.
    let window = SignedDuration::from_secs(i64::try_from(window_s)?);
    let base = Timestamp::from_second(Timestamp::now().as_second())? - window;
    let completions: Vec<(String, Timestamp)> = (0..n)
        .map(|i| {
            let offset = i64::try_from(i)? * window.as_secs() / i64::try_from(n.max(1))?;
            Ok((format!("job-{i}"), base + SignedDuration::from_secs(offset)))
        })
        .collect::<Result<_>>()?;
    let setup = Instant::now();
    crate::jobs::create_completed(&bench, completions.clone()).await?;
    let setup_s = setup.elapsed().as_secs_f64();

    let api: Api<Job> = Api::namespaced(bench.client.clone(), bench.namespace());
    let (deletions, watch) = watch_deletions(api);
    // Time for the controller to start and list every Job before the first expiry.
    let margin = SignedDuration::from_secs(5 + (n / 1000) as i64);
    let ttl = (Timestamp::now() + margin).duration_since(base).as_secs() + 1;
    let expiry: HashMap<String, Timestamp> = completions
        .into_iter()
        .map(|(name, done)| (name, done + SignedDuration::from_secs(ttl)))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = Requests::scrape(&bench.client).await?;
    let controller = bench.start(
        Kind::Cleanup,
        &[
            ("COMPLETED_JOBS_TTL", format!("{ttl}s")),
            ("DELETE_RATE", delete_rate.to_string()),
            // The per-cycle cap would defer most of a large batch to the next hour.
            ("MAX_DELETIONS_PER_CYCLE", "1000000".to_owned()),
        ],
    )?;
    let deadline = Duration::from_secs(window_s + 120) + margin.unsigned_abs();
    let waiting = Instant::now();
    loop {
        let deleted = deletions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        if deleted >= n {
            break;
        }
        if waiting.elapsed() > deadline {
            eprintln!("cleanup: only {deleted} of {n} Jobs deleted after {deadline:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the last deletion's watch event and requests land.
    tokio::time::sleep(Duration::from_secs(1)).await;
    watch.abort();
    let requests = Requests::scrape(&bench.client)
        .await?
        .since(&before, &Requests::default());
    let metric_text = controller.metrics().await?;
    controller.kill().await?;
    bench.teardown().await?;

    let deletions = deletions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if deletions.is_empty() {
        bail!("no Job was deleted; see the controller log");
    }
    let mut lags = Vec::new();
    for (name, at) in &deletions {
        let expired = expiry
            .get(name)
            .context("a deleted Job we did not create")?;
        let at = Timestamp::try_from(*at)?;
        lags.push(at.duration_since(*expired).as_secs_f64());
    }
    let times: Vec<SystemTime> = deletions.values().copied().collect();
    let first = times.iter().min().copied().context("deletions")?;
    let last = times.iter().max().copied().context("deletions")?;
    let span = last.duration_since(first).unwrap_or_default().as_secs_f64();
    Ok(Row {
        jobs: n,
        expiry_window_s: window_s,
        delete_rate,
        deleted: deletions.len(),
        setup_s,
        lag: Summary::of(&lags),
        deletions_per_second: deletions.len() as f64 / span.max(1e-3),
        api_server_requests_per_job: requests.total() as f64 / deletions.len() as f64,
        api_server_requests_by_kind: requests,
        controller_lag_metric: metric_text
            .lines()
            .filter(|l| l.starts_with(LAG_METRIC))
            .map(str::to_owned)
            .collect(),
    })
}
