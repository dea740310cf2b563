//! Scenario: Kubernetes stops the leader (SIGTERM) while its API server hangs. The process must
//! exit well within the Pod's termination grace period (30 s by default) instead of waiting on
//! requests that will never be answered; the standby takes over once the Lease expires.

use std::time::Duration;

use gitops_crd::Phase;
use gitops_harness::{Harness, workspace_binary};

/// A third of Kubernetes' default termination grace period.
const EXIT_WITHIN: Duration = Duration::from_secs(10);

/// Starts `binary` as the leader, freezes kube-apiserver, sends SIGTERM and checks the exit.
async fn stops_in_time_while_the_api_server_hangs(
    binary: &str,
    until_working: impl AsyncFnOnce(&Harness),
) {
    let mut h =
        Harness::with_private_environment(&format!("shutdown-{binary}"), workspace_binary(binary))
            .await;
    let leader = h.start_controller(&[]);
    until_working(&h).await;

    let frozen = h
        .env
        .control_plane()
        .freeze("kube-apiserver")
        .expect("kube-apiserver frozen");
    // Let the controller's watches and Lease renewal block on it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = h.terminate_controller(leader, EXIT_WITHIN * 4).await;
    drop(frozen);

    let Some((took, success)) = stopped else {
        panic!(
            "{binary} still running {:?} after SIGTERM with the API server hung",
            EXIT_WITHIN * 4
        );
    };
    assert!(
        took <= EXIT_WITHIN,
        "{binary} exited only after {took:?} (limit {EXIT_WITHIN:?}); logs:\n{}",
        h.logs()
    );
    assert!(success, "a stop on SIGTERM is a clean exit");
    assert!(
        h.logs().contains("it will expire by itself"),
        "the Lease was left to expire: {}",
        h.logs()
    );
}

#[tokio::test]
async fn service_discovery_exits_within_the_grace_period_while_the_api_server_hangs() {
    stops_in_time_while_the_api_server_hangs("gitops-service-discovery", async |h| {
        h.apply(h.proxyconfig("web")).await;
        h.wait_phase("web", Phase::Ready).await;
    })
    .await;
}

#[tokio::test]
async fn cleanup_exits_within_the_grace_period_while_the_api_server_hangs() {
    stops_in_time_while_the_api_server_hangs("gitops-cleanup", async |h| {
        h.wait_until("the cleanup controller to lead", || async {
            h.logs().contains("became leader").then_some(())
        })
        .await;
    })
    .await;
}
