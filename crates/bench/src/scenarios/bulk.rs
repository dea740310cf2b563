//! Scenario 2 (with 7): N ProxyConfigs applied at once; time until all are Ready, what it
//! cost in authentik and API-server requests, and the naive baseline at the same latency.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::apiserver::Requests;
use crate::authentik;
use crate::controller::Kind;
use crate::report::{Table, secs};
use crate::scenarios::baseline::{self, Baseline};
use crate::setup::{Bench, Latency, ReadyTracker};

/// The controller's default `AUTHENTIK_CONCURRENCY`, which the ideal time divides by.
const AUTHENTIK_CONCURRENCY: f64 = 8.0;

#[derive(Debug, Serialize)]
struct Row {
    objects: usize,
    latency_model: String,
    /// Every object Ready before the timeout.
    completed: bool,
    ready: usize,
    create_s: f64,
    /// From the first create to the last Ready.
    all_ready_s: f64,
    authentik_requests: usize,
    authentik_requests_per_object: BTreeMap<String, f64>,
    outpost_writes: usize,
    /// Σ request time in the double ÷ allowed concurrency.
    ideal_s: f64,
    peak_authentik_concurrency: usize,
    api_server_requests: u64,
    api_server_writes: u64,
    api_server_requests_by_kind: Requests,
    baseline: Baseline,
    speedup_vs_baseline: f64,
}

pub async fn run(sizes: &[usize], latencies: &[Latency], baseline_budget: Duration) -> Result<()> {
    let mut rows = Vec::new();
    for &latency in latencies {
        for &n in sizes {
            eprintln!("bulk: {n} ProxyConfigs at {latency}");
            rows.push(measure(n, latency, baseline_budget).await?);
        }
    }
    let mut table = Table::new(
        "Scenario 2 — bulk onboarding (and scenario 7, the naive baseline)",
        &[
            "objects",
            "authentik latency",
            "all Ready s",
            "ideal s",
            "÷ ideal",
            "authentik req/object",
            "outpost writes",
            "peak authentik concurrency",
            "API req (writes)/object",
            "baseline s",
            "speed-up",
        ],
    );
    for row in &rows {
        let n = row.objects as f64;
        table.row(vec![
            row.objects.to_string(),
            row.latency_model.clone(),
            if row.completed {
                secs(row.all_ready_s)
            } else {
                format!("{} Ready after {:.0}", row.ready, row.all_ready_s)
            },
            secs(row.ideal_s),
            // Without latency the ideal is ~0 and the ratio meaningless.
            if row.ideal_s < 0.05 {
                "n/a".to_owned()
            } else {
                format!("{:.2}", row.all_ready_s / row.ideal_s)
            },
            format!("{:.2}", row.authentik_requests as f64 / n),
            row.outpost_writes.to_string(),
            row.peak_authentik_concurrency.to_string(),
            format!(
                "{:.1} ({:.1})",
                row.api_server_requests as f64 / n,
                row.api_server_writes as f64 / n
            ),
            format!(
                "{}{:.1}",
                if row.baseline.extrapolated { "~" } else { "" },
                row.baseline.total_s
            ),
            format!("{:.1}×", row.speedup_vs_baseline),
        ]);
    }
    let mut kinds = Table::new(
        "Scenario 2 — authentik requests per object, by kind",
        &["objects", "authentik latency", "request", "per object"],
    );
    for row in &rows {
        for (kind, per_object) in &row.authentik_requests_per_object {
            kinds.row(vec![
                row.objects.to_string(),
                row.latency_model.clone(),
                kind.clone(),
                format!("{per_object:.3}"),
            ]);
        }
    }
    crate::report::publish("bulk", &[table, kinds], &rows)?;
    Ok(())
}

async fn measure(n: usize, latency: Latency, baseline_budget: Duration) -> Result<Row> {
    let bench = Bench::new(&format!("bulk-{n}"), latency).await?;
    let mut controller = bench.start(Kind::ServiceDiscovery, &[])?;
    controller.wait_ready(Duration::from_secs(60)).await?;
    let tracker = ReadyTracker::start(bench.proxyconfigs());
    // The tracker's own list and watch, and the controller's first snapshot, should not be
    // counted: start from a quiet system.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let before = Requests::scrape(&bench.client).await?;
    bench.double.clear_requests();
    bench.double.reset_peak_concurrency();
    let started = Instant::now();
    let create_s = bench.create_proxyconfigs("pc", n).await?.as_secs_f64();
    // Generous: the realistic model's outpost writes grow with the outpost.
    let timeout = Duration::from_secs_f64(120.0 + n as f64 * 0.5);
    let completed = tracker.wait_for(n, timeout).await.is_ok();
    let all_ready_s = tracker
        .last_ready()
        .map_or(started.elapsed(), |at| at.duration_since(started))
        .as_secs_f64();
    let mut own = Requests::default();
    own.add("POST proxyconfigs", n as u64);
    let api = Requests::scrape(&bench.client).await?.since(&before, &own);
    let records = bench.double.requests();
    let peak = bench.double.peak_concurrency();
    controller.kill().await?;
    bench.teardown().await?;

    let per_object = authentik::by_kind(&records)
        .into_iter()
        .map(|(kind, count)| (kind, count as f64 / n as f64))
        .collect();
    let baseline = baseline::run(latency, n, baseline_budget).await?;
    Ok(Row {
        objects: n,
        latency_model: latency.to_string(),
        completed,
        ready: tracker.count(),
        create_s,
        all_ready_s,
        authentik_requests: records.len(),
        authentik_requests_per_object: per_object,
        outpost_writes: authentik::outpost_writes(&records),
        ideal_s: authentik::total_seconds(&records) / AUTHENTIK_CONCURRENCY,
        peak_authentik_concurrency: peak,
        api_server_requests: api.total(),
        api_server_writes: api.writes(),
        api_server_requests_by_kind: api,
        speedup_vs_baseline: baseline.total_s / all_ready_s,
        baseline,
    })
}
