//! Scenario: a controller starts where a CRD it needs is not installed (the runbook's "CRD
//! Upgrades" step applied only one of them). Within seconds it must say so: an error line naming
//! the CRD and the fix, the reason in `/readyz`, and `gitops_resource_unavailable` for the
//! alert; and SIGTERM must still stop it. One private API server serves every case in turn
//! (each case deletes one CRD; the next harness installs them again). The same for a resource
//! RBAC forbids, on the shared API server.

use std::time::Duration;

use gitops_crd::ProxyConfig;
use gitops_crd::ownership::AuthentikObject;
use gitops_harness::{Harness, workspace_binary};
use gitops_runtime::watches::resource_name;
use gitops_testenv::{TestEnv, uninstall_crd};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;

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

    reported_everywhere(&mut h, controller, binary, resource, "not_served").await;
}

/// The reason is in `/readyz` and in `gitops_resource_unavailable`, and SIGTERM still stops
/// the process in time.
async fn reported_everywhere(
    h: &mut Harness,
    controller: usize,
    binary: &str,
    resource: &str,
    reason: &str,
) {
    let (status, body) = h.readyz(controller).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&format!("cannot watch {resource}")), "{body}");

    let metrics = h.scrape_metrics(controller).await;
    let reported = metrics.lines().any(|line| {
        line.starts_with("gitops_resource_unavailable{")
            && line.contains(&format!("resource=\"{resource}\""))
            && line.contains(&format!("reason=\"{reason}\""))
            && line.ends_with(" 1")
    });
    assert!(
        reported,
        "{binary}: gitops_resource_unavailable is not 1 for {resource} ({reason}):\n{metrics}"
    );

    let stopped = h.terminate_controller(controller, EXIT_WITHIN * 4).await;
    let Some((took, success)) = stopped else {
        panic!("{binary} still running after SIGTERM with {resource} unavailable");
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

/// A kubeconfig like the environment's that acts as `user` (impersonation), who has no RBAC
/// rights at all.
fn impersonating(h: &Harness, user: &str) -> std::path::PathBuf {
    let mut config = kube::config::Kubeconfig::read_from(h.env.kubeconfig()).expect("kubeconfig");
    for named in &mut config.auth_infos {
        if let Some(auth) = named.auth_info.as_mut() {
            auth.impersonate = Some(user.to_owned());
        }
    }
    let path = std::env::temp_dir().join(format!("{}-kubeconfig.json", h.namespace()));
    std::fs::write(&path, serde_json::to_vec(&config).expect("json")).expect("kubeconfig written");
    path
}

#[tokio::test]
async fn each_controller_names_a_resource_rbac_forbids() {
    for (binary, resource) in [
        ("gitops-service-discovery", resource_name::<Service>()),
        ("gitops-cleanup", resource_name::<Job>()),
    ] {
        let mut h = Harness::new(&format!("forbidden-{binary}"), workspace_binary(binary)).await;
        let user = format!("system:serviceaccount:{}:nobody", h.namespace());
        let kubeconfig = impersonating(&h, &user);
        let controller =
            h.start_controller_with_kubeconfig(&kubeconfig, &["--leader-election", "false"]);
        h.wait_until("the forbidden resource in the log", || async {
            h.logs()
                .lines()
                .any(|line| {
                    line.contains("ERROR")
                        && line.contains(&format!("cannot watch {resource}: RBAC forbids it"))
                })
                .then_some(())
        })
        .await;
        reported_everywhere(&mut h, controller, binary, &resource, "forbidden").await;
        let _ = std::fs::remove_file(kubeconfig);
    }
}
