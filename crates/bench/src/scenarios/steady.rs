//! Scenario 3: N converged ProxyConfigs over several (shortened) resync periods: authentik
//! requests per resync, API-server writes (must be zero) and CPU.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;

use crate::apiserver::Requests;
use crate::authentik;
use crate::controller::Kind;
use crate::procstat::Usage;
use crate::report::{Table, secs};
use crate::setup::{Bench, Latency, converge};

const RESYNCS: &str = "gitops_authentik_resyncs_total";

#[derive(Debug, Serialize)]
struct Row {
    objects: usize,
    resync_interval_s: u64,
    converge_s: f64,
    window_s: f64,
    resyncs: f64,
    authentik_requests_per_resync: f64,
    authentik_requests_per_resync_by_kind: BTreeMap<String, f64>,
    authentik_writes: usize,
    api_server_requests: u64,
    api_server_writes: u64,
    api_server_requests_by_kind: Requests,
    cpu_seconds: f64,
    cpu_seconds_per_resync: f64,
    usage_after: Usage,
}

pub async fn run(sizes: &[usize], resync: Duration, periods: u32) -> Result<()> {
    let mut rows = Vec::new();
    for &n in sizes {
        eprintln!("steady: {n} converged ProxyConfigs, resync every {resync:?}");
        rows.push(measure(n, resync, periods).await?);
    }
    let mut table = Table::new(
        "Scenario 3 — steady state over several resyncs",
        &[
            "objects",
            "resync",
            "resyncs",
            "authentik req/resync",
            "authentik writes",
            "API-server req",
            "API-server writes",
            "CPU s/resync",
            "RSS MiB",
        ],
    );
    for row in &rows {
        table.row(vec![
            row.objects.to_string(),
            format!("{}s", row.resync_interval_s),
            format!("{:.0}", row.resyncs),
            format!("{:.1}", row.authentik_requests_per_resync),
            row.authentik_writes.to_string(),
            row.api_server_requests.to_string(),
            row.api_server_writes.to_string(),
            secs(row.cpu_seconds_per_resync),
            format!("{:.1}", row.usage_after.rss_mib),
        ]);
    }
    crate::report::publish("steady", &[table], &rows)?;
    Ok(())
}

async fn measure(n: usize, resync: Duration, periods: u32) -> Result<Row> {
    let bench = Bench::new(&format!("steady-{n}"), Latency::Fixed(0)).await?;
    let resync = crate::setup::resync_for(n, resync);
    let interval = format!("{}s", resync.as_secs());
    let mut controller = bench.start(Kind::ServiceDiscovery, &[("RESYNC_INTERVAL", interval)])?;
    controller.wait_ready(Duration::from_secs(60)).await?;
    let converge_s = converge(&bench, n, Duration::from_secs_f64(120.0 + n as f64 * 0.2))
        .await?
        .as_secs_f64();
    // Start counting right after a resync, once onboarding's stragglers have settled.
    let after_onboarding = controller.metric_sum(RESYNCS).await?;
    let waiting = Instant::now();
    while controller.metric_sum(RESYNCS).await? <= after_onboarding {
        if waiting.elapsed() > resync * 3 {
            bail!("no resync within {:?}", resync * 3);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let resyncs_before = controller.metric_sum(RESYNCS).await?;
    let api_before = Requests::scrape(&bench.client).await?;
    let usage_before = controller.usage()?;
    bench.double.clear_requests();
    let started = Instant::now();
    tokio::time::sleep(resync * periods + resync / 2).await;
    let records = bench.double.requests();
    let usage_after = controller.usage()?;
    let api = Requests::scrape(&bench.client)
        .await?
        .since(&api_before, &Requests::default());
    let resyncs = controller.metric_sum(RESYNCS).await? - resyncs_before;
    let window_s = started.elapsed().as_secs_f64();
    controller.kill().await?;
    bench.teardown().await?;

    let per_resync = resyncs.max(1.0);
    let cpu_seconds = usage_after.cpu_seconds - usage_before.cpu_seconds;
    Ok(Row {
        objects: n,
        resync_interval_s: resync.as_secs(),
        converge_s,
        window_s,
        resyncs,
        authentik_requests_per_resync: records.len() as f64 / per_resync,
        authentik_requests_per_resync_by_kind: authentik::by_kind(&records)
            .into_iter()
            .map(|(kind, count)| (kind, count as f64 / per_resync))
            .collect(),
        authentik_writes: authentik::writes(&records),
        api_server_requests: api.total(),
        api_server_writes: api.writes(),
        api_server_requests_by_kind: api,
        cpu_seconds,
        cpu_seconds_per_resync: cpu_seconds / per_resync,
        usage_after,
    })
}
