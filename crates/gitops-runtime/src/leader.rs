use std::future::Future;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Gauge: 1 while this replica holds the Lease and runs its controller.
pub const LEADER_METRIC: &str = "gitops_leader";

/// Which Lease to contend for and how.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub lease_name: String,
    pub namespace: String,
    /// Unique per replica (the Pod name).
    pub identity: String,
    /// How long a lock stays valid without renewal (the gap after a leader dies).
    pub lease_duration: Duration,
    /// How long before expiry the holder renews.
    pub renew_before: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("cannot use Lease {namespace}/{name}: {source}")]
    Lease {
        namespace: String,
        name: String,
        source: LeaseManagerError,
    },
}

/// Runs `work` only while this replica holds the Lease. When the lock is lost (or renewing it
/// fails, which may mean another replica can take it), `work`'s token is cancelled and awaited
/// before contending again, so two replicas never work at once. Returns after `shutdown`,
/// releasing the Lease so a standby takes over at once.
pub async fn run_while_leader<F, Fut>(
    client: Client,
    config: LeaderConfig,
    shutdown: CancellationToken,
    mut work: F,
) -> Result<(), LeaderError>
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let lease_error = |source| LeaderError::Lease {
        namespace: config.namespace.clone(),
        name: config.lease_name.clone(),
        source,
    };
    let building = LeaseManagerBuilder::new(client, &config.lease_name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.lease_duration.as_secs().max(2))
        .with_grace(config.renew_before.as_secs().max(1))
        .build();
    // Building reads (or creates) the Lease: an API server that hangs must not hold a stopping
    // process.
    let manager = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        built = building => built.map_err(lease_error)?,
    };

    let mut running: Option<(CancellationToken, JoinHandle<()>)> = None;
    metrics::gauge!(LEADER_METRIC).set(0.0);
    loop {
        let changed = tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = manager.changed() => changed,
        };
        match changed {
            Ok(true) => {
                tracing::info!(identity = %config.identity, lease = %config.lease_name, "became leader");
                metrics::gauge!(LEADER_METRIC).set(1.0);
                let token = shutdown.child_token();
                let handle = tokio::spawn(work(token.clone()));
                running = Some((token, handle));
            }
            Ok(false) => {
                tracing::warn!(identity = %config.identity, "lost leadership; stopping work");
                stop(&mut running).await;
            }
            Err(error) => {
                tracing::error!(%error, "error renewing the leader Lease; stepping down until it can be renewed");
                stop(&mut running).await;
                // Releasing resets the manager so that it reports the next acquisition.
                release(&manager).await;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    stop(&mut running).await;
    release(&manager).await;
    Ok(())
}

async fn stop(running: &mut Option<(CancellationToken, JoinHandle<()>)>) {
    if let Some((token, handle)) = running.take() {
        token.cancel();
        crate::process::join_within(handle, WORK_STOP_TIMEOUT).await;
    }
    metrics::gauge!(LEADER_METRIC).set(0.0);
}

/// How long the work may take to stop before it is abandoned. Its own waits are bounded, but
/// not all are ours: kube-runtime 5's controller holds its runner until its main store is ready
/// and ends a graceful shutdown only after the runner, so a controller whose main resource is
/// never listed (CRD missing, RBAC) never finishes by itself. No such wait may keep a stopping
/// process alive.
pub(crate) const WORK_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long handing the Lease over may take. An API server that accepts connections but does not
/// answer would otherwise keep a stopping process alive until Kubernetes kills it; the Lease then
/// expires by itself.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

async fn release(manager: &LeaseManager) {
    match tokio::time::timeout(RELEASE_TIMEOUT, manager.release()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not release the leader Lease; it will expire by itself");
        }
        Err(_) => tracing::warn!(
            timeout = ?RELEASE_TIMEOUT,
            "the API server did not answer the Lease release in time; it will expire by itself"
        ),
    }
}
