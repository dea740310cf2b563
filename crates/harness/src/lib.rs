//! End-to-end test support: a real API server (shared by the test run), a namespace, an
//! authentik double and controller processes per test. Controllers run as their real binaries,
//! scoped to the test's namespace, so tests can kill and restart them like Pods.
//!
//! Contract mode: with [`AUTHENTIK_URL_VARIABLE`] and [`AUTHENTIK_TOKEN_VARIABLE`] set,
//! [`Harness::new`] talks to that authentik instead of a double ([`TestAuthentik`]). Tests read
//! authentik through `h.authentik` (its public API) and so run in both modes; a test that needs
//! the double (fault injection, latency, its request log or state) starts with
//! `if skip_in_contract_mode("why") { return; }` and then uses [`Harness::double`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use authentik_double::{DoubleConfig, DoubleHandle};
use gitops_crd::{Phase, ProxyConfig};
use gitops_testenv::{TestEnv, TestNamespace};
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

pub use gitops_testenv::{WAIT, eventually};

mod authentik;
pub mod forward_auth;
pub use authentik::{
    AUTHENTIK_TOKEN_VARIABLE, AUTHENTIK_URL_VARIABLE, TestAuthentik, contract_mode,
    skip_in_contract_mode,
};

/// Environment variable naming the authentik release (`2024.10` … `2026.8`) the double imitates
/// in [`Harness::new`]; `cargo xtask test` runs the lifecycle tests again with the oldest, and
/// `--all-versions` with every release.
pub const AUTHENTIK_VERSION_VARIABLE: &str = "GITOPS_TEST_AUTHENTIK_VERSION";

/// The double's configuration for this run: the release [`AUTHENTIK_VERSION_VARIABLE`] names.
pub fn double_config() -> DoubleConfig {
    let version = match std::env::var(AUTHENTIK_VERSION_VARIABLE) {
        Ok(v) if !v.trim().is_empty() => v
            .parse()
            .unwrap_or_else(|e| panic!("{AUTHENTIK_VERSION_VARIABLE}: {e}")),
        _ => authentik_double::ApiVersion::newest(),
    };
    DoubleConfig::default().with_api_version(version)
}

/// Which authentik a harness talks to.
enum Authentik {
    /// The external one in contract mode, else the double of [`double_config`].
    PerMode,
    /// A double configured so, in every mode.
    Double(DoubleConfig),
}

pub struct Harness {
    binary: PathBuf,
    /// Controller output, one file per started process: kept out of the test output, shown
    /// when a test fails, and searchable (e.g. for secrets).
    logs: tempfile::TempDir,
    pub env: &'static TestEnv,
    pub ns: TestNamespace,
    pub client: Client,
    /// The double, or in contract mode the external authentik.
    pub authentik: TestAuthentik,
    controllers: Vec<Option<ControllerProcess>>,
}

#[derive(Debug)]
pub struct ControllerProcess {
    child: Child,
    pub metrics_port: u16,
    pub health_port: u16,
}

fn free_port() -> u16 {
    gitops_testenv::free_port().expect("a free loopback port")
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Stopped before the authentik objects are removed (when `authentik` drops), so no
        // controller re-creates one meanwhile.
        for process in self.controllers.iter_mut().flatten() {
            let _ = process.child.start_kill();
        }
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(60).collect();
            eprintln!("--- last controller log lines ({}) ---", self.namespace());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("namespace", &self.ns.name())
            .field("binary", &self.binary)
            .field("authentik", &self.authentik.base_url())
            .finish_non_exhaustive()
    }
}

/// A binary of this workspace, next to the running test executable's directory
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`). `cargo xtask test` builds every
/// binary before the tests run.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace` (cargo xtask test does)",
        path.display()
    );
    path
}

impl Harness {
    /// `binary`: the controller these tests run (usually `env!("CARGO_BIN_EXE_…")`). The
    /// double imitates the release [`AUTHENTIK_VERSION_VARIABLE`] names (default the newest);
    /// in contract mode ([`AUTHENTIK_URL_VARIABLE`]) the test talks to that authentik instead.
    pub async fn new(purpose: &str, binary: impl Into<PathBuf>) -> Self {
        let env = TestEnv::shared().expect("test environment");
        Self::build(purpose, binary.into(), env, Authentik::PerMode).await
    }

    /// Like [`Harness::new`], with a differently configured authentik double (in every mode).
    pub async fn with_double(
        purpose: &str,
        binary: impl Into<PathBuf>,
        double: DoubleConfig,
    ) -> Self {
        let env = TestEnv::shared().expect("test environment");
        Self::build(purpose, binary.into(), env, Authentik::Double(double)).await
    }

    /// Like [`Harness::new`], on an API server of its own that the test may restart.
    pub async fn with_private_environment(purpose: &str, binary: impl Into<PathBuf>) -> Self {
        // Leaked: it must outlive every client; the watchdog stops it when the process exits.
        let env: &'static TestEnv = Box::leak(Box::new(
            TestEnv::private().expect("a private test environment"),
        ));
        Self::build(
            purpose,
            binary.into(),
            env,
            Authentik::Double(double_config()),
        )
        .await
    }

    /// Like [`Harness::new`], on a given environment (e.g. one private environment that several
    /// harnesses of a test take turns on).
    pub async fn on_environment(
        purpose: &str,
        binary: impl Into<PathBuf>,
        env: &'static TestEnv,
    ) -> Self {
        Self::build(
            purpose,
            binary.into(),
            env,
            Authentik::Double(DoubleConfig::default()),
        )
        .await
    }

    async fn build(
        purpose: &str,
        binary: PathBuf,
        env: &'static TestEnv,
        authentik: Authentik,
    ) -> Self {
        gitops_runtime::install_crypto_provider();
        let (client, ns) = env
            .prepare(purpose)
            .await
            .expect("client, CRDs and namespace");
        let authentik = match authentik {
            Authentik::PerMode => TestAuthentik::start(ns.name(), double_config()).await,
            Authentik::Double(config) => TestAuthentik::double(ns.name(), config).await,
        };
        Self {
            binary,
            logs: tempfile::tempdir().expect("a directory for controller logs"),
            env,
            ns,
            client,
            authentik,
            controllers: Vec::new(),
        }
    }

    /// The authentik double; for tests that returned early on [`skip_in_contract_mode`]
    /// (or were built with one, e.g. [`Harness::with_double`]).
    pub fn double(&self) -> &DoubleHandle {
        self.authentik.expect_double()
    }

    pub fn namespace(&self) -> &str {
        self.ns.name()
    }

    /// Starts a controller process; `extra` are additional flags. Returns its index.
    pub fn start_controller(&mut self, extra: &[&str]) -> usize {
        let kubeconfig = self.env.kubeconfig();
        self.start_controller_with_kubeconfig(&kubeconfig, extra)
    }

    /// Like [`start_controller`](Self::start_controller), talking to Kubernetes as `kubeconfig`
    /// says (e.g. as a ServiceAccount with fewer rights).
    pub fn start_controller_with_kubeconfig(&mut self, kubeconfig: &Path, extra: &[&str]) -> usize {
        let (metrics_port, health_port) = (free_port(), free_port());
        let log_path = self
            .logs
            .path()
            .join(format!("controller-{}.log", self.controllers.len()));
        let log = std::fs::File::create(&log_path).expect("controller log file");
        let child = Command::new(&self.binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            .env("AUTHENTIK_HOST", self.authentik.base_url())
            .env("AUTHENTIK_TOKEN", self.authentik.token())
            .env("WATCH_NAMESPACE", self.namespace())
            .env("POD_NAMESPACE", self.namespace())
            .env("RESYNC_INTERVAL", "2s")
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "info,gitops_service_discovery=debug")
            .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("HEALTH_ADDR", format!("127.0.0.1:{health_port}"))
            .env("LEASE_DURATION", "3s")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("controller starts");
        self.controllers.push(Some(ControllerProcess {
            child,
            metrics_port,
            health_port,
        }));
        self.controllers.len() - 1
    }

    /// One controller without leader election (most tests).
    pub fn start_single(&mut self) -> usize {
        self.start_controller(&["--leader-election", "false"])
    }

    /// Everything every controller process of this test has printed so far.
    pub fn logs(&self) -> String {
        let mut files: Vec<_> = std::fs::read_dir(self.logs.path())
            .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn controller(&self, index: usize) -> &ControllerProcess {
        self.controllers[index]
            .as_ref()
            .expect("controller running")
    }

    /// Whether the controller process is still alive (it has not crashed or exited).
    pub fn controller_running(&mut self, index: usize) -> bool {
        self.controllers[index]
            .as_mut()
            .is_some_and(|process| matches!(process.child.try_wait(), Ok(None)))
    }

    /// SIGKILL, as a crashed Pod.
    pub async fn kill_controller(&mut self, index: usize) {
        if let Some(mut process) = self.controllers[index].take() {
            let _ = process.child.start_kill();
            let _ = process.child.wait().await;
        }
    }

    /// SIGTERM, as Kubernetes stops a Pod; waits up to `patience` for the process to exit and
    /// returns how long it took and whether it exited successfully (`None`: still running; it is
    /// killed when the harness is dropped).
    pub async fn terminate_controller(
        &mut self,
        index: usize,
        patience: Duration,
    ) -> Option<(Duration, bool)> {
        let process = self.controllers[index].as_mut()?;
        let pid = process.child.id()?;
        let started = std::time::Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).ok()?),
            nix::sys::signal::Signal::SIGTERM,
        )
        .ok()?;
        let status = tokio::time::timeout(patience, process.child.wait())
            .await
            .ok()?
            .ok()?;
        self.controllers[index] = None;
        Some((started.elapsed(), status.success()))
    }

    pub fn proxyconfigs(&self) -> Api<ProxyConfig> {
        Api::namespaced(self.client.clone(), self.namespace())
    }

    /// Applies a ProxyConfig (server-side apply, so tests can change fields by re-applying).
    pub async fn apply(&self, manifest: Value) -> ProxyConfig {
        let name = manifest["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_owned();
        self.proxyconfigs()
            .patch(
                &name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&manifest),
            )
            .await
            .expect("ProxyConfig applies")
    }

    pub async fn delete(&self, name: &str) {
        self.proxyconfigs()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete accepted");
    }

    pub async fn get(&self, name: &str) -> Option<ProxyConfig> {
        self.proxyconfigs().get_opt(name).await.expect("get")
    }

    /// Waits until the ProxyConfig reports `phase` for its current generation.
    pub async fn wait_phase(&self, name: &str, phase: Phase) -> ProxyConfig {
        let api = self.proxyconfigs();
        let reached = eventually(&format!("{name} to be {phase:?}"), || async {
            let pc = api.get_opt(name).await.ok().flatten()?;
            let status = pc.status.as_ref()?;
            (status.phase == Some(phase) && status.observed_generation == pc.metadata.generation)
                .then_some(pc)
        })
        .await;
        match reached {
            Ok(pc) => pc,
            Err(error) => {
                let last = api
                    .get_opt(name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|pc| pc.status);
                panic!("{error}; last status: {last:#?}")
            }
        }
    }

    pub async fn wait_gone(&self, name: &str) {
        let api = self.proxyconfigs();
        eventually(&format!("{name} to be deleted"), || async {
            matches!(api.get_opt(name).await, Ok(None)).then_some(())
        })
        .await
        .expect("deleted");
    }

    pub async fn create_service(&self, name: &str, port: i32) {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": port}]}
        }))
        .expect("service");
        Api::<Service>::namespaced(self.client.clone(), self.namespace())
            .create(&PostParams::default(), &service)
            .await
            .expect("service created");
    }

    /// A unique provider name for this test (records are cluster-wide).
    pub fn provider_name(&self, base: &str) -> String {
        format!("{base}-{}", self.namespace())
    }

    /// A minimal ProxyConfig publishing Service `name` on port 80.
    pub fn proxyconfig(&self, name: &str) -> Value {
        json!({
            "apiVersion": "gitops.io/v1",
            "kind": "ProxyConfig",
            "metadata": {"name": name, "namespace": self.namespace()},
            "spec": {
                "serviceName": name,
                "serviceNamespace": self.namespace(),
                "externalHost": format!("{name}.{}.example.com", self.namespace()),
                "internalHost": format!("http://{name}.{}.svc.cluster.local:80", self.namespace()),
                "authentikConfig": {"providerName": self.provider_name(name)}
            }
        })
    }

    pub async fn wait_until<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        gitops_testenv::wait_until(what, check).await
    }

    /// The controller's `/readyz` answer: status code and body.
    pub async fn readyz(&self, index: usize) -> (u16, String) {
        let port = self.controller(index).health_port;
        let response = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .expect("readyz");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// The value of one series on controller `index`'s `/metrics` (`None`: not exposed yet).
    pub async fn metric(&self, index: usize, series: &str) -> Option<f64> {
        gitops_testenv::metric_value(&self.try_scrape(index).await?, series)
    }

    /// Waits until a series on controller `index` reaches `at_least`.
    pub async fn wait_metric(&self, index: usize, series: &str, at_least: f64) -> f64 {
        self.wait_until(&format!("{series} >= {at_least}"), || async {
            self.metric(index, series).await.filter(|v| *v >= at_least)
        })
        .await
    }

    pub async fn scrape_metrics(&self, index: usize) -> String {
        self.try_scrape(index).await.expect("metrics scraped")
    }

    async fn try_scrape(&self, index: usize) -> Option<String> {
        let port = self.controller(index).metrics_port;
        let response = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await;
        response.ok()?.text().await.ok()
    }
}

/// The condition of `type_` in a ProxyConfig's status.
pub fn condition<'a>(
    pc: &'a ProxyConfig,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    pc.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} condition"))
}
