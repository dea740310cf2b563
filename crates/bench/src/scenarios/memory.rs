//! Scenario 5: peak and steady RSS of each controller at N ProxyConfigs (service-discovery)
//! and N finished Jobs (cleanup), from the kernel (`VmHWM`, `VmRSS`).

use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use crate::controller::{Controller, Kind};
use crate::procstat::Usage;
use crate::report::{Table, secs};
use crate::setup::{Bench, Latency, converge};

/// How long after the population is complete the steady RSS is read.
const SETTLE: Duration = Duration::from_secs(15);

#[derive(Debug, Serialize)]
struct Row {
    controller: &'static str,
    objects: usize,
    object_kind: &'static str,
    populate_s: f64,
    /// RSS right after start-up, before the objects exist.
    idle: Usage,
    /// `SETTLE` after the population is complete.
    steady: Usage,
}

/// A controller this scenario measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Measured {
    ServiceDiscovery,
    Cleanup,
}

/// Measures `controllers` (all of them when empty) at each of `sizes`.
pub async fn run(sizes: &[usize], controllers: &[Measured]) -> Result<()> {
    let measured = |controller| controllers.is_empty() || controllers.contains(&controller);
    let mut rows = Vec::new();
    for &n in sizes {
        if measured(Measured::ServiceDiscovery) {
            eprintln!("memory: service-discovery at {n} ProxyConfigs");
            rows.push(proxyconfigs(n).await?);
        }
        if measured(Measured::Cleanup) {
            eprintln!("memory: cleanup at {n} Jobs");
            rows.push(jobs(n).await?);
        }
    }
    let mut table = Table::new(
        "Scenario 5 — controller memory (MiB, from /proc)",
        &[
            "controller",
            "objects",
            "idle RSS",
            "peak RSS (VmHWM)",
            "steady RSS",
            "CPU s total",
            "populate s",
        ],
    );
    for row in &rows {
        table.row(vec![
            row.controller.to_owned(),
            format!("{} {}", row.objects, row.object_kind),
            format!("{:.1}", row.idle.rss_mib),
            format!("{:.1}", row.steady.peak_rss_mib),
            format!("{:.1}", row.steady.rss_mib),
            secs(row.steady.cpu_seconds),
            secs(row.populate_s),
        ]);
    }
    crate::report::publish("memory", &[table], &rows)?;
    Ok(())
}

async fn started(bench: &Bench, kind: Kind, settings: &[(&str, String)]) -> Result<Controller> {
    let mut controller = bench.start(kind, settings)?;
    controller.wait_ready(Duration::from_secs(60)).await?;
    Ok(controller)
}

async fn proxyconfigs(n: usize) -> Result<Row> {
    let bench = Bench::new(&format!("memory-pc-{n}"), Latency::Fixed(0)).await?;
    // Resyncs during the run, so their list pages count towards the peak.
    let resync = crate::setup::resync_for(n, Duration::from_secs(10));
    let controller = started(
        &bench,
        Kind::ServiceDiscovery,
        &[("RESYNC_INTERVAL", format!("{}s", resync.as_secs()))],
    )
    .await?;
    let idle = controller.usage()?;
    let populate = converge(&bench, n, Duration::from_secs_f64(120.0 + n as f64 * 0.2)).await?;
    tokio::time::sleep(SETTLE).await;
    let steady = controller.usage()?;
    controller.kill().await?;
    bench.teardown().await?;
    Ok(Row {
        controller: "gitops-service-discovery",
        objects: n,
        object_kind: "ProxyConfigs",
        populate_s: populate.as_secs_f64(),
        idle,
        steady,
    })
}

async fn jobs(n: usize) -> Result<Row> {
    let bench = Bench::new(&format!("memory-jobs-{n}"), Latency::Fixed(0)).await?;
    // Complete but not expired: every Job is cached and has a pending expiry timer.
    let controller = started(&bench, Kind::Cleanup, &[]).await?;
    let idle = controller.usage()?;
    let at = Timestamp::now();
    let populating = Instant::now();
    let jobs = (0..n).map(|i| (format!("job-{i}"), at)).collect();
    crate::jobs::create_completed(&bench, jobs).await?;
    let populate_s = populating.elapsed().as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    let steady = controller.usage()?;
    controller.kill().await?;
    bench.teardown().await?;
    Ok(Row {
        controller: "gitops-cleanup",
        objects: n,
        object_kind: "Jobs",
        populate_s,
        idle,
        steady,
    })
}
