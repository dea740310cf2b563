//! `gitops-service-discovery check-authentik` (the chart's `helm test`) against the authentik
//! double: the exit code and the one line for each outcome, and the token never printed.

use std::net::TcpListener;
use std::process::Output;

use authentik_double::{AuthentikDouble, DoubleConfig};

const SOURCE: &str = "Secret flux-system/authentik-token";

/// Runs the check as the chart's test Pod does: settings from the environment, the token from
/// a file.
async fn check(host: &str, token: &str) -> Output {
    let dir = tempfile::tempdir().expect("temporary directory");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).expect("token file");
    tokio::process::Command::new(env!("CARGO_BIN_EXE_gitops-service-discovery"))
        .env_clear()
        .env("AUTHENTIK_HOST", host)
        .env("AUTHENTIK_TOKEN_FILE", &token_file)
        .env("AUTHENTIK_TIMEOUT", "2s")
        .args(["check-authentik", "--token-source", SOURCE])
        .output()
        .await
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_configured_token_passes() {
    let double = AuthentikDouble::start(DoubleConfig::default())
        .await
        .expect("double starts");
    let out = check(&double.base_url(), double.token()).await;
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}; stderr: {}",
        text(&out.stderr)
    );
    assert!(stdout.starts_with("ok: authentik at "), "{stdout}");
    assert!(
        !stdout.contains(double.token()),
        "the token is printed: {stdout}"
    );
}

#[tokio::test]
async fn a_wrong_token_fails_naming_the_secret() {
    let double = AuthentikDouble::start(DoubleConfig::default())
        .await
        .expect("double starts");
    let wrong = "not-the-token-authentik-knows";
    let out = check(&double.base_url(), wrong).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("answered HTTP 403"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the token in {SOURCE} is wrong or its user lacks rights"
        )),
        "{stderr}"
    );
    let printed = format!("{stderr}{}", text(&out.stdout));
    assert!(!printed.contains(wrong), "the token is printed: {printed}");
}

#[tokio::test]
async fn an_unreachable_authentik_fails_saying_so() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let host = format!("http://127.0.0.1:{port}");
    let out = check(&host, "some-token").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.starts_with(&format!("error: authentik is not reachable at {host}")),
        "{stderr}"
    );
}
