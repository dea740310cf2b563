//! Contract check with the official PyPI `authentik-client` of every supported release: runs
//! `contract/official_client_scenario.py` with that release's package against an in-process
//! double imitating that release.
//!
//! Each package lives in a private virtualenv at
//! `${XDG_CACHE_HOME:-~/.cache}/gitops-lifecycle-management/venv/authentik-client-<version>`,
//! created on first use (about 40 s each on 2 cores, network needed) and reused while it holds
//! the pinned version (the package version the release's facts were derived from). Warm, the
//! whole matrix takes about a minute, mostly Python importing the generated models.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use authentik_double::{ApiVersion, DoubleConfig};
use common::start_with;
use tokio::sync::Semaphore;

fn venv_dir(package_version: &str) -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("XDG_CACHE_HOME or HOME is set");
    cache
        .join("gitops-lifecycle-management/venv")
        .join(format!("authentik-client-{package_version}"))
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

/// Create or reuse the virtualenv of one package version; idempotent.
fn ensure_venv(package_version: &str) -> PathBuf {
    let dir = venv_dir(package_version);
    let python = dir.join("bin/python");
    if installed_version(&python).as_deref() == Some(package_version) {
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
        &format!("authentik-client=={package_version}"),
    ]));
    assert_eq!(installed_version(&python).as_deref(), Some(package_version));
    python
}

/// The scenario with `version`'s package against the double in `version`'s mode.
async fn scenario(version: ApiVersion) -> Result<(), String> {
    let package = version.client_package_version();
    let python = tokio::task::spawn_blocking(move || ensure_venv(package))
        .await
        .unwrap();
    let d = start_with(DoubleConfig::default().with_api_version(version)).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("contract/official_client_scenario.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args(["--host", &d.api_url(), "--token", d.token()])
        .args(["--expect-version", version.version_string()])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stdout.contains("all checks passed") {
        return Err(format!("{version} ({package}):\n{stdout}\n{stderr}"));
    }
    // The scenario really went through the double.
    if d.count("POST", "/api/v3/providers/proxy/") < 3
        || d.count("PATCH", "/api/v3/outposts/instances/") != 3
    {
        return Err(format!(
            "{version}: the scenario's writes did not reach the double"
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_of_every_release_runs_the_scenario() {
    // Two at a time: each run is mostly Python importing ~900 generated models.
    let slots = Arc::new(Semaphore::new(2));
    let mut runs = tokio::task::JoinSet::new();
    for version in ApiVersion::all() {
        let slots = slots.clone();
        runs.spawn(async move {
            let _slot = slots.acquire_owned().await.unwrap();
            scenario(version).await
        });
    }
    let failures: Vec<String> = runs
        .join_all()
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
