//! Failure paths that need no cluster: bad flags, no kubeconfig, an unreachable API server.
//! Each gives one line on stderr and exit code 2.

mod common;

use common::run;

#[tokio::test]
async fn bad_flags_give_one_line_and_exit_2() {
    run(&["health", "--no-such-flag"], &[])
        .await
        .expect_one_line_error("--no-such-flag");
    run(&["-o", "yaml", "health"], &[])
        .await
        .expect_one_line_error("possible values: table, json");
    run(&["frobnicate"], &[])
        .await
        .expect_one_line_error("frobnicate");
    run(&["onboard", "grafana"], &[])
        .await
        .expect_one_line_error("--host");
    let help = run(&["--help"], &[]).await;
    help.expect_code(0);
    assert!(help.stdout.contains("verify"), "{help:#?}");
}

#[tokio::test]
async fn a_missing_kubeconfig_gives_one_line_and_exit_2() {
    run(&["--kubeconfig", "/nonexistent/kubeconfig", "health"], &[])
        .await
        .expect_one_line_error("/nonexistent/kubeconfig");
    // No flag, no $KUBECONFIG, no ~/.kube/config, not in a cluster.
    let home = tempfile::tempdir().expect("tempdir");
    run(
        &["verify"],
        &[
            ("HOME", home.path().display().to_string()),
            ("AUTHENTIK_HOST", "http://127.0.0.1:1".into()),
            ("AUTHENTIK_TOKEN", "t".into()),
        ],
    )
    .await
    .expect_one_line_error("kubeconfig");
}

#[tokio::test]
async fn an_unreachable_cluster_gives_one_line_and_exit_2() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: dead\nclusters:\n- name: dead\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: dead\n  context: {{cluster: dead, user: u}}\nusers:\n- name: u\n  user: {{token: abc}}\n"
        ),
    )
    .expect("kubeconfig written");
    for command in ["health", "verify", "report", "backup"] {
        let mut args = vec!["--kubeconfig", kubeconfig.to_str().expect("utf-8"), command];
        if command == "backup" {
            args.push("/tmp/unused-backup-dir");
        }
        run(
            &args,
            &[
                ("AUTHENTIK_HOST", "http://127.0.0.1:1".into()),
                ("AUTHENTIK_TOKEN", "t".into()),
            ],
        )
        .await
        .expect_one_line_error("cannot reach the Kubernetes API server");
    }
    assert!(!std::path::Path::new("/tmp/unused-backup-dir").exists());
}

#[tokio::test]
async fn verify_without_authentik_says_what_to_set() {
    run(&["verify"], &[])
        .await
        .expect_one_line_error("AUTHENTIK_HOST");
    run(
        &["verify"],
        &[("AUTHENTIK_HOST", "http://127.0.0.1:1".into())],
    )
    .await
    .expect_one_line_error("AUTHENTIK_TOKEN");
}
