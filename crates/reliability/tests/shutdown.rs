//! Scenario: Kubernetes stops the leader (SIGTERM) while its API server hangs, or is gone
//! altogether (connection refused), or while a CRD it needs is missing and the API server goes
//! away right after. The process must exit well within the Pod's termination grace period
//! (30 s by default) instead of waiting on requests that will never be answered or caches that
//! will never fill; the standby takes over once the Lease expires.

use std::time::Duration;

use gitops_crd::Phase;
use gitops_harness::{Harness, workspace_binary};
use gitops_testenv::uninstall_crd;

/// A third of Kubernetes' default termination grace period.
const EXIT_WITHIN: Duration = Duration::from_secs(10);

/// What happens to kube-apiserver around the SIGTERM.
#[derive(Clone, Copy, Debug)]
enum Outage {
    /// Frozen before: connections are accepted, never answered.
    Hung,
    /// Stopped before: connections are refused.
    Gone,
    /// Stopped right after the SIGTERM.
    GoneAfterSignal,
}

/// Starts `binary` as the leader, takes kube-apiserver away as `outage` says around the
/// SIGTERM, and checks the exit.
async fn stops_in_time(h: &mut Harness, binary: &str, outage: Outage) {
    let leader = 0;
    let env = h.env;
    let plane = env.control_plane();
    let frozen = match outage {
        Outage::Hung => Some(
            plane
                .freeze("kube-apiserver")
                .expect("kube-apiserver frozen"),
        ),
        Outage::Gone => {
            plane
                .stop_component("kube-apiserver")
                .expect("kube-apiserver stopped");
            None
        }
        Outage::GoneAfterSignal => None,
    };
    if !matches!(outage, Outage::GoneAfterSignal) {
        // Let the controller's watches and Lease renewal run into the outage.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let stopping = h.terminate_controller(leader, EXIT_WITHIN * 4);
    let stopped = if matches!(outage, Outage::GoneAfterSignal) {
        // Stopping kube-apiserver blocks until it has exited; meanwhile the clock runs.
        let gone = tokio::task::spawn_blocking(move || plane.stop_component("kube-apiserver"));
        let stopped = stopping.await;
        gone.await
            .expect("stopping kube-apiserver")
            .expect("kube-apiserver stopped");
        stopped
    } else {
        stopping.await
    };
    drop(frozen);

    let Some((took, success)) = stopped else {
        panic!(
            "{binary} still running {:?} after SIGTERM ({outage:?}); logs:\n{}",
            EXIT_WITHIN * 4,
            h.logs()
        );
    };
    assert!(
        took <= EXIT_WITHIN,
        "{binary} exited only after {took:?} (limit {EXIT_WITHIN:?}, {outage:?}); logs:\n{}",
        h.logs()
    );
    assert!(success, "a stop on SIGTERM is a clean exit");
    if matches!(outage, Outage::Hung) {
        assert!(
            h.logs().contains("it will expire by itself"),
            "the Lease was left to expire: {}",
            h.logs()
        );
    }
}

async fn leading(purpose: &str, binary: &str) -> Harness {
    let mut h = Harness::with_private_environment(purpose, workspace_binary(binary)).await;
    h.start_controller(&[]);
    h
}

async fn service_discovery_working(purpose: &str) -> Harness {
    let h = leading(purpose, "gitops-service-discovery").await;
    h.apply(h.proxyconfig("web")).await;
    h.wait_phase("web", Phase::Ready).await;
    h
}

async fn cleanup_working(purpose: &str) -> Harness {
    let h = leading(purpose, "gitops-cleanup").await;
    h.wait_until("the cleanup controller to lead", || async {
        h.logs().contains("became leader").then_some(())
    })
    .await;
    h
}

#[tokio::test]
async fn service_discovery_exits_within_the_grace_period_while_the_api_server_hangs() {
    let mut h = service_discovery_working("shutdown-hung-sd").await;
    stops_in_time(&mut h, "gitops-service-discovery", Outage::Hung).await;
}

#[tokio::test]
async fn cleanup_exits_within_the_grace_period_while_the_api_server_hangs() {
    let mut h = cleanup_working("shutdown-hung-cleanup").await;
    stops_in_time(&mut h, "gitops-cleanup", Outage::Hung).await;
}

#[tokio::test]
async fn service_discovery_exits_within_the_grace_period_when_the_api_server_is_gone() {
    let mut h = service_discovery_working("shutdown-gone-sd").await;
    stops_in_time(&mut h, "gitops-service-discovery", Outage::Gone).await;
}

#[tokio::test]
async fn cleanup_exits_within_the_grace_period_when_the_api_server_is_gone() {
    let mut h = cleanup_working("shutdown-gone-cleanup").await;
    stops_in_time(&mut h, "gitops-cleanup", Outage::Gone).await;
}

/// The case found in the field: the AuthentikObject CRD missing, so a reconcile waits for a
/// cache that never fills; SIGTERM, and the API server stopped right after.
#[tokio::test]
async fn service_discovery_stops_with_a_crd_missing_and_the_api_server_gone() {
    let mut h = Harness::with_private_environment(
        "shutdown-missing-crd",
        workspace_binary("gitops-service-discovery"),
    )
    .await;
    uninstall_crd(&h.client, "authentikobjects.gitops.io")
        .await
        .expect("CRD deleted");
    h.apply(h.proxyconfig("web")).await;
    h.start_controller(&[]);
    // A reconcile is in flight, waiting for the AuthentikObject cache.
    h.wait_until("the missing CRD reported", || async {
        h.logs()
            .contains("cannot watch authentikobjects.gitops.io")
            .then_some(())
    })
    .await;
    h.wait_until("the ProxyConfig to get its finalizer", || async {
        let pc = h.get("web").await?;
        (!pc.metadata.finalizers.unwrap_or_default().is_empty()).then_some(())
    })
    .await;
    stops_in_time(&mut h, "gitops-service-discovery", Outage::GoneAfterSignal).await;
}
