//! Start-up and wiring: observability first, then (as leader) the Job controller with its
//! per-Job timers and the periodic full sweep (Jobs, Pods, orphaned authentik objects).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use gitops_authentik::AuthentikClient;
use gitops_crd::ProxyConfig;
use gitops_crd::names::CLEANUP_MANAGER;
use gitops_crd::ownership::AuthentikObject;
use gitops_runtime::watches::{Caches, cached_watch, check_listable, resource_name, scoped};
use gitops_runtime::{Events, Process, Work};
use kube::api::{Api, ListParams};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use crate::config::{Args, Settings};
use crate::events::ReportOnce;
use crate::job_summary::JobSummary;
use crate::jobs::{JobCleaner, error_policy, reconcile};
use crate::metrics::{self, CycleTimer};
use crate::orphans::OrphanSweeper;
use crate::pods::PodCleaner;
use crate::throttle::Throttle;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let process = Process::start(&args.process, CLEANUP_MANAGER).await?;
    gitops_authentik::describe_metrics();
    metrics::describe();
    let settings = Arc::new(args.into_settings()?);
    check_label_selector(&process.client, &settings).await?;
    let authentik = match &settings.authentik {
        Some(config) => Some(AuthentikClient::new(config.clone()).context("AUTHENTIK_HOST")?),
        None => {
            tracing::info!(
                "orphan sweep is off (ORPHAN_SWEEP=false, or no AUTHENTIK_HOST and token); Job and Pod cleanup run"
            );
            None
        }
    };
    tracing::info!(
        interval = %humantime::format_duration(settings.interval),
        completed_jobs_ttl = %humantime::format_duration(settings.jobs.completed_ttl),
        failed_jobs_ttl = %humantime::format_duration(settings.jobs.failed_ttl),
        orphaned_providers_max_age = %humantime::format_duration(settings.orphans.max_age),
        dry_run = settings.dry_run,
        pod_cleanup = settings.pods.finished.is_some(),
        stuck_pod_cleanup = settings.pods.stuck_after.is_some(),
        orphan_sweep = authentik.is_some(),
        "gitops-cleanup starting"
    );

    process
        .run(move |work: Work| run_cleanup(work, authentik.clone(), settings.clone()))
        .await?;
    Ok(())
}

/// Kubernetes has no client-side selector parser we could use, so the API server checks it:
/// a malformed selector stops start-up with its answer instead of failing every watch.
async fn check_label_selector(client: &kube::Client, settings: &Settings) -> anyhow::Result<()> {
    let Some(selector) = &settings.job_label_selector else {
        return Ok(());
    };
    scoped::<JobSummary>(client, settings.watch_namespace.as_deref())
        .list_metadata(&ListParams::default().labels(selector).limit(1))
        .await
        .map(drop)
        .with_context(|| format!("JOB_LABEL_SELECTOR {selector:?} was rejected"))
}

/// Runs the cleanup until `token` is cancelled (shutdown, or leadership lost).
fn run_cleanup(
    work: Work,
    authentik: Option<AuthentikClient>,
    settings: Arc<Settings>,
) -> impl Future<Output = ()> + Send + use<> {
    let Work {
        client,
        readiness,
        identity,
        token,
    } = work;
    // Registered before the work starts, so that /readyz never answers 200 in between.
    let caches_synced = readiness.gate("caches synced");
    let authentik_reached = authentik
        .is_some()
        .then(|| readiness.gate("authentik reached"));
    async move {
        let throttle = Arc::new(Throttle::new(
            settings.delete_rate,
            settings.max_deletions_per_cycle,
            settings.interval,
        ));
        let events = Events::new(client.clone(), CLEANUP_MANAGER, identity, "Cleanup");
        let jobs = Arc::new(JobCleaner {
            client: client.clone(),
            policy: settings.jobs.clone(),
            label_selector: settings.job_label_selector.clone(),
            dry_run: settings.dry_run,
            throttle: throttle.clone(),
            events: events.clone(),
            max_wait: settings.interval,
            reported: ReportOnce::default(),
        });
        let pods = PodCleaner {
            client: client.clone(),
            api: scoped(&client, settings.watch_namespace.as_deref()),
            policy: settings.pods.clone(),
            dry_run: settings.dry_run,
            throttle: throttle.clone(),
            events: events.clone(),
            reported: ReportOnce::default(),
        };
        let orphans = authentik
            .zip(authentik_reached)
            .map(|(authentik, authentik_reached)| OrphanSweeper {
                records: Api::all(client.clone()),
                proxyconfigs: scoped(&client, settings.watch_namespace.as_deref()),
                watch_namespace: settings.watch_namespace.clone(),
                authentik,
                policy: settings.orphans.clone(),
                dry_run: settings.dry_run,
                throttle: throttle.clone(),
                events: events.clone(),
                reported: ReportOnce::default(),
                authentik_reached,
            });

        let mut watch_config = watcher::Config::default();
        if let Some(selector) = &settings.job_label_selector {
            watch_config = watch_config.labels(selector);
        }
        // The cache keeps what the verdict reads (see `JobSummary`): in clusters with many Jobs,
        // whole Jobs would be most of this process's memory.
        let job_watch = cached_watch(
            scoped::<JobSummary>(&client, settings.watch_namespace.as_deref()),
            watch_config,
            JobSummary::trim_for_cache,
            |_| {},
            readiness.resource(resource_name::<JobSummary>()),
        );
        let (store, job_stream) = (job_watch.store, job_watch.stream);
        let caches = Caches::new(vec![job_watch.synced], token.clone());
        // The orphan sweep only lists these, at its interval: check them now, so a missing CRD
        // is reported at start-up, not an interval later.
        let required = orphans.as_ref().map(|orphans| {
            let (records, proxyconfigs) = (
                readiness.resource(resource_name::<AuthentikObject>()),
                readiness.resource(resource_name::<ProxyConfig>()),
            );
            (
                tokio::spawn(check_listable(
                    orphans.records.clone(),
                    records,
                    token.clone(),
                )),
                tokio::spawn(check_listable(
                    orphans.proxyconfigs.clone(),
                    proxyconfigs,
                    token.clone(),
                )),
            )
        });

        // The first pass waits for the Job cache, so it sees the Jobs that existed before
        // start-up.
        let sweeper = tokio::spawn({
            let (jobs, store, token) = (jobs.clone(), store.clone(), token.clone());
            let interval = settings.interval;
            async move {
                if caches.wait().await.is_err() {
                    return;
                }
                caches_synced.set(true);
                sweep_loop(jobs, store, pods, orphans, interval, token).await;
            }
        });
        Controller::for_stream(job_stream, store)
            .graceful_shutdown_on(token.clone().cancelled_owned())
            .run(reconcile, error_policy, jobs)
            .for_each(|_| async {})
            .await;
        token.cancel();
        let _ = sweeper.await;
        if let Some((records, proxyconfigs)) = required {
            let _ = records.await;
            let _ = proxyconfigs.await;
        }
        tracing::info!("cleanup stopped");
    }
}

/// The safety net: every `interval`, a full pass over Jobs (any whose timer was missed),
/// Pods and orphaned authentik objects.
async fn sweep_loop(
    jobs: Arc<JobCleaner>,
    store: Store<JobSummary>,
    pods: PodCleaner,
    orphans: Option<OrphanSweeper>,
    interval: Duration,
    token: CancellationToken,
) {
    loop {
        let cycle = async {
            let _timer = CycleTimer::start();
            jobs.sweep(&store).await;
            if pods.enabled()
                && let Err(error) = pods.sweep().await
            {
                metrics::error(&error);
                tracing::error!(%error, "Pod sweep failed; retrying next cycle");
            }
            if let Some(orphans) = &orphans
                && let Err(error) = orphans.sweep().await
            {
                metrics::error(&error);
                tracing::error!(%error, "orphan sweep stopped; retrying next cycle");
            }
        };
        // Stopping mid-cycle is safe: every step re-reads before it acts.
        tokio::select! {
            _ = token.cancelled() => return,
            () = cycle => {}
        }
        tokio::select! {
            _ = token.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
