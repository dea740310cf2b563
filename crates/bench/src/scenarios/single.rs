//! Scenario 1: create → Ready latency of one ProxyConfig on an idle system, next to the
//! authentik round trips that reconcile made, so the controller's own overhead is visible.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{DeleteParams, PostParams};
use serde::Serialize;

use crate::authentik;
use crate::controller::Kind;
use crate::report::{Table, secs};
use crate::setup::{Bench, Latency, ReadyTracker};
use crate::stats::Summary;

#[derive(Debug, Serialize)]
struct Sample {
    latency_s: f64,
    authentik_requests: usize,
    /// Wall time with an authentik request in flight.
    authentik_busy_s: f64,
    requests_by_kind: BTreeMap<String, usize>,
}

#[derive(Debug, Serialize)]
struct Row {
    latency_model: String,
    outpost_batch_window: String,
    latency: Summary,
    authentik_requests: Summary,
    authentik_busy: Summary,
    /// latency ÷ authentik busy time, per sample.
    ratio: Summary,
    /// latency − authentik busy time, per sample.
    overhead: Summary,
    samples: Vec<Sample>,
}

pub async fn run(latencies: &[Latency], samples: usize) -> Result<()> {
    let mut rows = Vec::new();
    for &latency in latencies {
        eprintln!("single: {samples} samples at {latency}");
        rows.push(measure(latency, samples).await?);
    }
    let mut table = Table::new(
        "Scenario 1 — create → Ready, one ProxyConfig, idle system (seconds)",
        &[
            "authentik latency",
            "samples",
            "p50",
            "p90",
            "p99",
            "authentik req/reconcile",
            "authentik time p50",
            "overhead p50",
            "ratio p50",
            "ratio p99",
        ],
    );
    for row in &rows {
        table.row(vec![
            row.latency_model.clone(),
            row.latency.count.to_string(),
            secs(row.latency.p50),
            secs(row.latency.p90),
            secs(row.latency.p99),
            format!("{:.1}", row.authentik_requests.mean),
            secs(row.authentik_busy.p50),
            secs(row.overhead.p50),
            format!("{:.2}", row.ratio.p50),
            format!("{:.2}", row.ratio.p99),
        ]);
    }
    crate::report::publish("single", &[table], &rows)?;
    Ok(())
}

async fn measure(latency: Latency, samples: usize) -> Result<Row> {
    let bench = Bench::new("single", latency).await?;
    let mut controller = bench.start(Kind::ServiceDiscovery, &[])?;
    controller.wait_ready(Duration::from_secs(60)).await?;
    let tracker = ReadyTracker::start(bench.proxyconfigs());
    let api = bench.proxyconfigs();

    let mut measured = Vec::new();
    // Sample 0 warms the controller's flow and outpost caches and is not counted.
    for i in 0..=samples {
        let name = format!("single-{i}");
        let pc = bench.proxyconfig(&name)?;
        // Idle means the previous sample's deletion is over, its outpost write included: an
        // assignment within OUTPOST_BATCH_WINDOW (500 ms) of a write waits to share the next.
        tokio::time::sleep(Duration::from_secs(1)).await;
        bench.double.clear_requests();
        let started = Instant::now();
        api.create(&PostParams::default(), &pc).await?;
        let ready = loop {
            if let Some(at) = tracker.ready_at(&name) {
                break at;
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "{name} not Ready after 60 s; see {}",
                    controller.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let records = bench.double.requests();
        if i > 0 {
            measured.push(Sample {
                latency_s: ready.duration_since(started).as_secs_f64(),
                authentik_requests: records.len(),
                authentik_busy_s: authentik::busy_seconds(&records),
                requests_by_kind: authentik::by_kind(&records),
            });
        }
        // Remove it again so every sample starts from the same small outpost.
        api.delete(&name, &DeleteParams::default()).await?;
        let deleting = Instant::now();
        while api.get_opt(&name).await?.is_some() {
            if deleting.elapsed() > Duration::from_secs(60) {
                bail!("{name} not deleted after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    controller.kill().await?;
    bench.teardown().await?;

    let column = |f: &dyn Fn(&Sample) -> f64| -> Result<Summary> {
        Summary::of(&measured.iter().map(f).collect::<Vec<_>>()).context("no samples")
    };
    Ok(Row {
        latency_model: latency.to_string(),
        outpost_batch_window: crate::controller::experiment_settings()?
            .into_iter()
            .find_map(|(key, value)| (key == "OUTPOST_BATCH_WINDOW").then_some(value))
            .unwrap_or_else(|| "500ms (default; written at once when idle)".to_owned()),
        latency: column(&|s| s.latency_s)?,
        authentik_requests: column(&|s| s.authentik_requests as f64)?,
        authentik_busy: column(&|s| s.authentik_busy_s)?,
        ratio: column(&|s| s.latency_s / s.authentik_busy_s.max(1e-3))?,
        overhead: column(&|s| s.latency_s - s.authentik_busy_s)?,
        samples: measured,
    })
}
