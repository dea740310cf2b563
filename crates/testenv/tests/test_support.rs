//! The support crate itself: the environment runs the pinned versions, and a test's namespace
//! is removed even when the test panics.

use std::process::Command;
use std::time::Duration;

use gitops_testenv::{TestEnv, pins, poll_until};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;

#[tokio::test]
async fn environment_runs_the_pinned_kubernetes() {
    let env = TestEnv::shared().expect("test environment");
    let version = env
        .client()
        .await
        .expect("client")
        .apiserver_version()
        .await
        .expect("/version");
    let pinned = &pins::tool("kubernetes").expect("pinned").version;
    assert_eq!(version.git_version, format!("v{pinned}"));
    assert!(env.control_plane().is_running());
}

#[test]
fn pinned_tools_report_their_versions() {
    let pins = pins::pins().expect("tools.toml");
    let checks = [
        (
            "kubernetes",
            "kubectl",
            vec!["version", "--client"],
            format!("v{}", pins.tools["kubernetes"].version),
        ),
        (
            "etcd",
            "etcd",
            vec!["--version"],
            pins.tools["etcd"].version.clone(),
        ),
        (
            "helm",
            "helm",
            vec!["version", "--short"],
            format!("v{}", pins.tools["helm"].version),
        ),
        (
            "prometheus",
            "promtool",
            vec!["--version"],
            "promtool".to_owned(),
        ),
        (
            "traefik",
            "traefik",
            vec!["version"],
            pins.tools["traefik"].version.clone(),
        ),
    ];
    gitops_testenv::ensure_all_tools().expect("tools build");
    for (tool, binary, args, expected) in checks {
        let path = pins::binary(tool, binary).expect("pinned binary");
        let output = Command::new(&path).args(&args).output().expect("runs");
        let text =
            String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && text.contains(&expected),
            "{}: {text}",
            path.display()
        );
    }
}

#[tokio::test]
async fn namespace_is_deleted_when_its_test_panics() {
    let env = TestEnv::shared().expect("test environment");
    // A "test" on its own thread and runtime that panics while holding its namespace.
    let panicked = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let namespace = TestEnv::shared()
                .expect("env")
                .namespace("panics")
                .await
                .expect("namespace");
            let name = namespace.name().to_owned();
            std::panic::panic_any(name);
        })
    })
    .join()
    .expect_err("the thread panics");
    let name = panicked
        .downcast::<String>()
        .expect("namespace name as panic payload");

    let namespaces: Api<Namespace> = Api::all(env.client().await.expect("client"));
    poll_until(
        "the namespace to be deleted",
        Duration::from_secs(30),
        || async {
            // Terminating is enough: deletion was requested; the namespace controller finishes it.
            Ok(match namespaces.get_opt(&name).await? {
                None => Some(()),
                Some(ns) => ns.metadata.deletion_timestamp.map(drop),
            })
        },
    )
    .await
    .expect("namespace deleted after the panic");
}
