//! Scenario: a controller starts where a CRD it needs is not installed (the runbook's "CRD
//! Upgrades" step applied only one of them). Within seconds it must say so: an error line naming
//! the CRD and the fix, the reason in `/readyz`, and `gitops_resource_unavailable` for the
//! alert; and SIGTERM must still stop it. One private API server serves every case in turn
//! (each case deletes one CRD; the next harness installs them again).

use std::time::Duration;

use gitops_crd::ProxyConfig;
use gitops_crd::ownership::AuthentikObject;
use gitops_harness::{Harness, workspace_binary};
use gitops_runtime::watches::resource_name;
use gitops_testenv::{TestEnv, uninstall_crd};

/// How soon the problem must be reported. Generous for debug builds on a busy machine; the
/// controllers report at the first failed list, well within a second of starting.
const REPORTED_WITHIN: Duration = Duration::from_secs(20);
/// A third of Kubernetes' default termination grace period.
const EXIT_WITHIN: Duration = Duration::from_secs(10);

async fn reports_the_missing_crd(env: &'static TestEnv, binary: &str, resource: &str) {
    let crd = resource.split('/').next().expect("plural.group");
    let mut h = Harness::on_environment(
        &format!("missing-{}", crd.split('.').next().unwrap_or(crd)),
        workspace_binary(binary),
        env,
    )
    .await;
    uninstall_crd(&h.client, crd).await.expect("CRD deleted");
    // With leader election, as deployed: the Lease path is part of what must stop.
    let controller = h.start_controller(&[]);

    let started = std::time::Instant::now();
    h.wait_until("the missing CRD in the log", || async {
        let logs = h.logs();
        logs.lines()
            .any(|line| {
                line.contains("ERROR")
                    && line.contains(&format!("cannot watch {resource}"))
                    && line.contains("deploy/crds/")
            })
            .then_some(())
    })
    .await;
    assert!(
        started.elapsed() <= REPORTED_WITHIN,
        "{binary} took {:?} to report {crd} missing",
        started.elapsed()
    );

    let (status, body) = h.readyz(controller).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&format!("cannot watch {resource}")), "{body}");

    let metrics = h.scrape_metrics(controller).await;
    let reported = metrics.lines().any(|line| {
        line.starts_with("gitops_resource_unavailable{")
            && line.contains(&format!("resource=\"{resource}\""))
            && line.contains("reason=\"not_served\"")
            && line.ends_with(" 1")
    });
    assert!(
        reported,
        "{binary}: gitops_resource_unavailable is not 1 for {resource}:\n{metrics}"
    );

    let stopped = h.terminate_controller(controller, EXIT_WITHIN * 4).await;
    let Some((took, success)) = stopped else {
        panic!("{binary} still running after SIGTERM with {crd} missing");
    };
    assert!(took <= EXIT_WITHIN, "{binary} took {took:?} to stop");
    assert!(success, "{binary}: a stop on SIGTERM is a clean exit");
}

#[tokio::test]
async fn each_controller_names_each_crd_it_cannot_watch() {
    let env: &'static TestEnv = Box::leak(Box::new(
        TestEnv::private().expect("a private test environment"),
    ));
    for binary in ["gitops-service-discovery", "gitops-cleanup"] {
        for resource in [
            resource_name::<AuthentikObject>(),
            resource_name::<ProxyConfig>(),
        ] {
            reports_the_missing_crd(env, binary, &resource).await;
        }
    }
}
