//! A real API server (shared), a namespace, an authentik double (or, in contract mode, an
//! external authentik; see `gitops_harness::TestAuthentik`) and controller processes per
//! test. The controller runs as its real binary, scoped to the test's namespace; its output
//! goes to a file that is printed when the test fails.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use authentik_double::{DoubleConfig, DoubleHandle};
use gitops_crd::ownership::{AuthentikKind, AuthentikObject, record_name};
use gitops_harness::TestAuthentik;
use gitops_testenv::{TestEnv, TestNamespace};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// Full sweeps finished (the count of the cycle-duration histogram).
const SWEEPS: &str = "gitops_cleanup_cycle_duration_seconds_count";
/// Unix time the last full sweep ended.
pub const LAST_SWEEP: &str = "gitops_cleanup_last_run_timestamp_seconds";

/// Now, as Unix seconds (to compare with [`LAST_SWEEP`]).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub struct Harness {
    pub env: &'static TestEnv,
    pub ns: TestNamespace,
    pub client: Client,
    /// The double, or in contract mode the external authentik.
    pub authentik: TestAuthentik,
    logs: tempfile::TempDir,
    controllers: Vec<Option<ControllerProcess>>,
    /// Cluster-scoped objects a test made (records), removed at the end.
    records: Vec<String>,
}

pub struct ControllerProcess {
    child: Child,
    pub metrics_port: u16,
    pub health_port: u16,
    log: PathBuf,
}

fn free_port() -> u16 {
    gitops_testenv::free_port().expect("a free loopback port")
}

impl Harness {
    pub async fn new(purpose: &str) -> Self {
        gitops_runtime::install_crypto_provider();
        let env = TestEnv::shared().expect("test environment");
        let (client, ns) = env
            .prepare(purpose)
            .await
            .expect("client, CRDs and namespace");
        let authentik = TestAuthentik::start(ns.name(), DoubleConfig::default()).await;
        Self {
            env,
            ns,
            client,
            authentik,
            logs: tempfile::tempdir().expect("log dir"),
            controllers: Vec::new(),
            records: Vec::new(),
        }
    }

    pub fn namespace(&self) -> &str {
        self.ns.name()
    }

    /// The authentik double; for tests that returned early on
    /// `gitops_harness::skip_in_contract_mode`.
    pub fn double(&self) -> &DoubleHandle {
        self.authentik.expect_double()
    }

    /// Starts a controller process scoped to the test namespace, without leader election and
    /// without authentik unless `settings` say otherwise. Returns its index.
    pub fn start(&mut self, settings: &[(&str, &str)]) -> usize {
        let kubeconfig = self.env.kubeconfig();
        self.start_with_kubeconfig(&kubeconfig, settings)
    }

    /// Like [`Self::start`], with the orphan sweep pointed at the test's authentik.
    pub fn start_with_authentik(&mut self, settings: &[(&str, &str)]) -> usize {
        let base_url = self.authentik.base_url();
        let token = self.authentik.token().to_owned();
        let mut all = vec![
            ("AUTHENTIK_HOST", base_url.as_str()),
            ("AUTHENTIK_TOKEN", token.as_str()),
        ];
        all.extend_from_slice(settings);
        self.start(&all)
    }

    pub fn start_with_kubeconfig(
        &mut self,
        kubeconfig: &std::path::Path,
        settings: &[(&str, &str)],
    ) -> usize {
        let (metrics_port, health_port) = (free_port(), free_port());
        let mut env: BTreeMap<String, String> = [
            ("WATCH_NAMESPACE", self.namespace()),
            ("POD_NAMESPACE", self.namespace()),
            ("LEADER_ELECTION", "false"),
            ("LEASE_DURATION", "3s"),
            ("CLEANUP_INTERVAL", "1h"),
            ("LOG_FORMAT", "text"),
            ("RUST_LOG", "info,gitops_cleanup=debug"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.insert("METRICS_ADDR".into(), format!("127.0.0.1:{metrics_port}"));
        env.insert("HEALTH_ADDR".into(), format!("127.0.0.1:{health_port}"));
        for (key, value) in settings {
            env.insert((*key).to_owned(), (*value).to_owned());
        }
        // The orphan sweep judges only records claimed from the watched namespace: kept to the
        // test's own, it cannot delete another test's (or, in contract mode, anyone's) objects.
        assert_eq!(
            env.get("WATCH_NAMESPACE").map(String::as_str),
            Some(self.namespace()),
            "the cleanup controller must watch only the test namespace"
        );
        let log = self
            .logs
            .path()
            .join(format!("controller-{}.log", self.controllers.len()));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_gitops-cleanup"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("controller starts");
        self.controllers.push(Some(ControllerProcess {
            child,
            metrics_port,
            health_port,
            log,
        }));
        self.controllers.len() - 1
    }

    pub fn controller(&self, index: usize) -> &ControllerProcess {
        self.controllers[index]
            .as_ref()
            .expect("controller running")
    }

    /// SIGKILL, as a crashed Pod.
    pub async fn kill(&mut self, index: usize) {
        if let Some(mut process) = self.controllers[index].take() {
            let _ = process.child.start_kill();
            let _ = process.child.wait().await;
        }
    }

    pub fn logs(&self, index: usize) -> String {
        let path = self.logs.path().join(format!("controller-{index}.log"));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The value of one metric series (`name{labels}` exactly as exposed, or a bare name).
    pub async fn metric(&self, index: usize, series: &str) -> Option<f64> {
        let port = self.controller(index).metrics_port;
        let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        gitops_testenv::metric_value(&body, series)
    }

    pub async fn wait_metric(&self, index: usize, series: &str, at_least: f64) -> f64 {
        self.wait_until(&format!("{series} >= {at_least}"), || async {
            self.metric(index, series).await.filter(|v| *v >= at_least)
        })
        .await
    }

    /// Waits until the controller finished its first full sweep.
    pub async fn wait_first_sweep(&self, index: usize) {
        self.wait_metric(index, LAST_SWEEP, 1.0).await;
    }

    /// Full sweeps finished so far.
    pub async fn sweeps(&self, index: usize) -> f64 {
        self.metric(index, SWEEPS).await.unwrap_or_default()
    }

    /// Waits until `more` full sweeps have finished after the ones already counted: proof that
    /// the controller looked again, where a test checks that something did not happen.
    pub async fn wait_more_sweeps(&self, index: usize, more: u32) {
        let target = self.sweeps(index).await + f64::from(more);
        self.wait_metric(index, SWEEPS, target).await;
    }

    pub async fn ready(&self, index: usize) -> bool {
        let port = self.controller(index).health_port;
        matches!(reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await, Ok(r) if r.status() == 200)
    }

    pub async fn wait_until<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        gitops_testenv::wait_until(what, check).await
    }

    // --- Jobs -------------------------------------------------------------------------

    pub fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), self.namespace())
    }

    /// A Job that kube-controller-manager's Job controller leaves alone (`spec.managedBy`),
    /// so the test decides its status. `metadata` and `spec` are merged into the manifest.
    pub async fn create_job(&self, name: &str, metadata: Value, spec: Value) -> Job {
        let mut manifest = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "managedBy": "example.com/test",
                "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
            }
        });
        merge(&mut manifest["metadata"], metadata);
        merge(&mut manifest["spec"], spec);
        let job: Job = serde_json::from_value(manifest).expect("job manifest");
        self.jobs()
            .create(&PostParams::default(), &job)
            .await
            .expect("Job created")
    }

    /// Marks a Job `Complete` at `at` through the status subresource.
    pub async fn complete_job(&self, name: &str, at: Timestamp) -> Job {
        let t = at.to_string();
        self.patch_job_status(
            name,
            json!({
                "startTime": t, "completionTime": t, "succeeded": 1,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": t},
                    {"type": "Complete", "status": "True", "lastTransitionTime": t}
                ]
            }),
        )
        .await
    }

    /// Marks a Job `Failed` at `at` through the status subresource.
    pub async fn fail_job(&self, name: &str, at: Timestamp) -> Job {
        let t = at.to_string();
        self.patch_job_status(
            name,
            json!({
                "startTime": t, "failed": 1,
                "conditions": [
                    {"type": "FailureTarget", "status": "True", "lastTransitionTime": t},
                    {"type": "Failed", "status": "True", "lastTransitionTime": t}
                ]
            }),
        )
        .await
    }

    async fn patch_job_status(&self, name: &str, status: Value) -> Job {
        self.jobs()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .expect("Job status accepted")
    }

    pub async fn job_exists(&self, name: &str) -> bool {
        self.jobs().get_opt(name).await.expect("get Job").is_some()
    }

    /// Polls every 50 ms until the Job is gone; returns when it was first seen gone.
    pub async fn wait_job_gone(&self, name: &str, within: Duration) -> SystemTime {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if !self.job_exists(name).await {
                return SystemTime::now();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Job {name} still exists after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // --- Pods -------------------------------------------------------------------------

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), self.namespace())
    }

    pub async fn create_pod(&self, name: &str, metadata: Value, spec: Value) -> Pod {
        let mut manifest = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
        });
        merge(&mut manifest["metadata"], metadata);
        merge(&mut manifest["spec"], spec);
        let pod: Pod = serde_json::from_value(manifest).expect("pod manifest");
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .expect("Pod created")
    }

    /// Marks a Pod `Succeeded`, its container having finished at `at`.
    pub async fn finish_pod(&self, name: &str, at: Timestamp) {
        let t = at.to_string();
        let status = json!({"status": {"phase": "Succeeded", "containerStatuses": [{
            "name": "c", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "startedAt": t, "finishedAt": t}}
        }]}});
        self.pods()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .expect("Pod status accepted");
    }

    pub async fn pod_exists(&self, name: &str) -> bool {
        self.pods().get_opt(name).await.expect("get Pod").is_some()
    }

    /// Events in the test namespace (or `default` for cluster-scoped objects) about `name`.
    pub async fn events_about(&self, namespace: &str, name: &str, reason: &str) -> Vec<Event> {
        Api::<Event>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .expect("list Events")
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect()
    }

    // --- ownership records ------------------------------------------------------------

    pub fn records(&self) -> Api<AuthentikObject> {
        Api::all(self.client.clone())
    }

    /// A unique authentik name for this test (records are cluster-wide).
    pub fn unique(&self, base: &str) -> String {
        format!("{base}-{}", self.namespace())
    }

    /// Writes an ownership record as the service-discovery controller would, claimed from
    /// the test namespace by a ProxyConfig of uid `claimant_uid`. Returns the record's name.
    pub async fn create_record(
        &mut self,
        kind: AuthentikKind,
        authentik_name: &str,
        id: Option<&str>,
        claimant_uid: &str,
    ) -> String {
        let name = record_name(kind, authentik_name);
        let mut spec = json!({
            "kind": kind,
            "authentikName": authentik_name,
            "claimedBy": {"namespace": self.namespace(), "name": "some-proxyconfig", "uid": claimant_uid},
            "origin": "Created"
        });
        if let Some(id) = id {
            spec["authentikId"] = json!(id);
        }
        let record: AuthentikObject = serde_json::from_value(json!({
            "apiVersion": "gitops.io/v1", "kind": "AuthentikObject", "metadata": {"name": name}, "spec": spec
        }))
        .expect("record");
        self.records()
            .create(&PostParams::default(), &record)
            .await
            .expect("record created");
        self.records.push(name.clone());
        name
    }

    /// Names the application a provider record also owns, as the service-discovery controller
    /// does once both creates are confirmed.
    pub async fn record_application(&self, record: &str, slug: &str, uuid: &str) {
        let application = json!({"slug": slug, "id": uuid, "origin": "Created"});
        self.records()
            .patch(
                record,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"application": application}})),
            )
            .await
            .expect("application recorded");
    }

    pub async fn record(&self, name: &str) -> Option<AuthentikObject> {
        self.records().get_opt(name).await.expect("get record")
    }

    pub async fn orphaned_since(&self, name: &str) -> Option<Timestamp> {
        self.record(name).await?.status?.orphaned_since.map(|t| t.0)
    }

    /// Sets `status.orphanedSince` directly (as if an earlier sweep had, long ago).
    pub async fn mark_orphaned(&self, name: &str, since: Timestamp) {
        self.records()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"orphanedSince": since.to_string()}})),
            )
            .await
            .expect("status accepted");
    }

    /// A ProxyConfig in the test namespace (nothing reconciles it here). Returns its uid.
    pub async fn create_proxyconfig(&self, name: &str) -> String {
        let pc: gitops_crd::ProxyConfig = serde_json::from_value(json!({
            "apiVersion": "gitops.io/v1", "kind": "ProxyConfig",
            "metadata": {"name": name, "namespace": self.namespace()},
            "spec": {
                "serviceName": name, "serviceNamespace": self.namespace(),
                "externalHost": format!("{name}.example.com"),
                "internalHost": format!("http://{name}.{}.svc.cluster.local:80", self.namespace()),
                "authentikConfig": {"providerName": self.unique(name)}
            }
        }))
        .expect("ProxyConfig");
        Api::<gitops_crd::ProxyConfig>::namespaced(self.client.clone(), self.namespace())
            .create(&PostParams::default(), &pc)
            .await
            .expect("ProxyConfig created")
            .metadata
            .uid
            .expect("uid")
    }

    /// Creates a proxy provider in authentik as a person would; returns its pk.
    pub async fn create_provider(&self, name: &str) -> i64 {
        let host = format!("https://{name}.example.com");
        self.authentik.create_proxy_provider(name, &host).await.pk
    }

    /// Creates an application in authentik as a person would, bound to `provider` if given;
    /// returns its uuid.
    pub async fn create_application(&self, slug: &str, provider: Option<i64>) -> String {
        let request = gitops_authentik::ApplicationRequest {
            name: slug.to_owned(),
            slug: slug.to_owned(),
            provider,
            ..Default::default()
        };
        self.authentik
            .client()
            .create_application(&request)
            .await
            .expect("application created")
            .pk
    }

    /// A kubeconfig that acts as ServiceAccount `name` of the test namespace (impersonation),
    /// for running the controller with exactly some rights.
    pub fn kubeconfig_as_service_account(&self, name: &str) -> PathBuf {
        let mut config =
            kube::config::Kubeconfig::read_from(self.env.kubeconfig()).expect("kubeconfig");
        let user = format!("system:serviceaccount:{}:{name}", self.namespace());
        for named in &mut config.auth_infos {
            if let Some(auth) = named.auth_info.as_mut() {
                auth.impersonate = Some(user.clone());
            }
        }
        let path = self.logs.path().join(format!("kubeconfig-{name}"));
        std::fs::write(&path, serde_json::to_vec(&config).expect("serialize"))
            .expect("write kubeconfig");
        path
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Stopped before the test's authentik objects are removed (when `authentik` drops).
        for process in self.controllers.iter_mut().flatten() {
            let _ = process.child.start_kill();
        }
        if std::thread::panicking() {
            for index in 0..self.controllers.len() {
                eprintln!(
                    "----- controller {index} output -----\n{}",
                    self.logs(index)
                );
            }
        }
        // Records are cluster-scoped: namespace deletion does not take them. Drop cannot
        // await, and a client belongs to its runtime: delete from a helper thread.
        let names = std::mem::take(&mut self.records);
        if names.is_empty() {
            return;
        }
        let kubeconfig = self.env.kubeconfig();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(config) = kube::config::Kubeconfig::read_from(&kubeconfig) else {
                    return;
                };
                let Ok(config) =
                    kube::Config::from_custom_kubeconfig(config, &Default::default()).await
                else {
                    return;
                };
                let Ok(client) = Client::try_from(config) else {
                    return;
                };
                let api: Api<AuthentikObject> = Api::all(client);
                for name in names {
                    let _ = api.delete(&name, &DeleteParams::default()).await;
                }
            });
        })
        .join();
    }
}

/// Merges the keys of `extra` (an object, or null) into `target`.
fn merge(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

pub fn ago(seconds: i64) -> Timestamp {
    Timestamp::now() - SignedDuration::from_secs(seconds)
}
