//! Scenario 4: SIGKILL the service-discovery controller over N converged ProxyConfigs and start
//! it again: time until every object is re-verified, and authentik writes (must be zero).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use serde::Serialize;

use crate::apiserver::Requests;
use crate::authentik;
use crate::controller::{Kind, count_samples_at_least};
use crate::report::{Table, secs};
use crate::setup::{Bench, Latency, converge};

const LAST_RECONCILED: &str = "gitops_proxyconfig_last_reconciled";

#[derive(Debug, Serialize)]
struct Row {
    objects: usize,
    latency_model: String,
    /// From spawning the new process until `/readyz` answered.
    process_ready_s: f64,
    /// From spawning the new process until every ProxyConfig had a successful reconcile in it.
    all_reverified_s: f64,
    authentik_requests: usize,
    authentik_writes: usize,
    api_server_requests: u64,
    api_server_writes: u64,
    api_server_requests_by_kind: Requests,
}

pub async fn run(sizes: &[usize], latency: Latency) -> Result<()> {
    let mut rows = Vec::new();
    for &n in sizes {
        eprintln!("restart: {n} converged ProxyConfigs at {latency}");
        rows.push(measure(n, latency).await?);
    }
    let mut table = Table::new(
        "Scenario 4 — kill and restart over converged ProxyConfigs",
        &[
            "objects",
            "authentik latency",
            "process ready s",
            "all re-verified s",
            "authentik requests",
            "authentik writes",
            "API-server req (writes)",
        ],
    );
    for row in &rows {
        table.row(vec![
            row.objects.to_string(),
            row.latency_model.clone(),
            secs(row.process_ready_s),
            secs(row.all_reverified_s),
            row.authentik_requests.to_string(),
            row.authentik_writes.to_string(),
            format!("{} ({})", row.api_server_requests, row.api_server_writes),
        ]);
    }
    crate::report::publish("restart", &[table], &rows)?;
    Ok(())
}

async fn measure(n: usize, latency: Latency) -> Result<Row> {
    let bench = Bench::new(&format!("restart-{n}"), latency).await?;
    let mut first = bench.start(Kind::ServiceDiscovery, &[])?;
    first.wait_ready(Duration::from_secs(60)).await?;
    converge(&bench, n, Duration::from_secs_f64(120.0 + n as f64 * 0.2)).await?;
    // Let the last outpost write and status updates finish before the crash.
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.kill().await?;

    let api_before = Requests::scrape(&bench.client).await?;
    bench.double.clear_requests();
    let spawned_unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    let spawned = Instant::now();
    let mut second = bench.start(Kind::ServiceDiscovery, &[])?;
    let process_ready_s = second
        .wait_ready(Duration::from_secs(120))
        .await?
        .as_secs_f64();
    let timeout = Duration::from_secs_f64(120.0 + n as f64 * 0.1);
    let all_reverified_s = loop {
        // The new process starts with no series: every one present was set by it.
        let text = second.metrics().await?;
        if count_samples_at_least(&text, LAST_RECONCILED, spawned_unix) >= n {
            break spawned.elapsed().as_secs_f64();
        }
        if spawned.elapsed() > timeout {
            bail!("not every ProxyConfig re-verified after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Anything the restart triggers late (e.g. a write) would show within a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let records = bench.double.requests();
    let api = Requests::scrape(&bench.client)
        .await?
        .since(&api_before, &Requests::default());
    second.kill().await?;
    bench.teardown().await?;
    Ok(Row {
        objects: n,
        latency_model: latency.to_string(),
        process_ready_s,
        all_reverified_s,
        authentik_requests: records.len(),
        authentik_writes: authentik::writes(&records),
        api_server_requests: api.total(),
        api_server_writes: api.writes(),
        api_server_requests_by_kind: api,
    })
}
