//! Contract check with the official PyPI `authentik-client`: runs
//! `contract/official_client_scenario.py` against an in-process double.
//!
//! The package lives in a private virtualenv at
//! `${XDG_CACHE_HOME:-~/.cache}/gitops-lifecycle-management/venv/authentik-client-<version>`,
//! created on first use and reused while it holds the pinned version. The pin is the
//! 2025.12 client because the double imitates authentik 2025.12.4 (newer clients require
//! fields that server does not send, e.g. `Application.pbm_uuid` from 2026.8).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::start;

const CLIENT_VERSION: &str = "2025.12.4";

fn venv_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("XDG_CACHE_HOME or HOME is set");
    cache
        .join("gitops-lifecycle-management/venv")
        .join(format!("authentik-client-{CLIENT_VERSION}"))
}

fn installed_version(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('authentik-client'))",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Create or reuse the virtualenv; idempotent.
fn ensure_venv() -> PathBuf {
    let dir = venv_dir();
    let python = dir.join("bin/python");
    if installed_version(&python).as_deref() == Some(CLIENT_VERSION) {
        return python;
    }
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    if !python.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&dir));
    }
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("authentik-client=={CLIENT_VERSION}"),
    ]));
    assert_eq!(installed_version(&python).as_deref(), Some(CLIENT_VERSION));
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_runs_the_scenario() {
    let python = tokio::task::spawn_blocking(ensure_venv).await.unwrap();
    let d = start().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("contract/official_client_scenario.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args(["--host", &d.api_url(), "--token", d.token()])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scenario failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
    // The scenario really went through the double.
    assert!(d.count("POST", "/api/v3/providers/proxy/") >= 3);
    assert_eq!(d.count("PATCH", "/api/v3/outposts/instances/"), 3);
}
