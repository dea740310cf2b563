//! RBAC proven by use: the chart's ServiceAccounts, ClusterRoles and bindings are applied to the
//! test API server and each controller binary runs a real scenario with a kubeconfig that
//! impersonates its ServiceAccount (`as:`), so every request is authorized exactly as in a
//! cluster. A ServiceAccount without the chart's bindings gets nowhere (the rights are needed,
//! not incidental).
//!
//! The binaries come from the workspace's target directory (`cargo xtask test` builds the whole
//! workspace before running tests); the authentik double runs in-process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use authentik_double::{AuthentikDouble, DoubleConfig, DoubleHandle};
use gitops_crd::ownership::{
    AuthentikKind, AuthentikObject, AuthentikObjectSpec, Origin, ProxyConfigRef, record_name,
};
use gitops_e2e::{
    controller_binary, free_port, impersonating_kubeconfig, kubectl, to_yaml_stream, workspace_root,
};
use gitops_testenv::{TestEnv, TestNamespace, poll_until};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(90);

/// The chart's RBAC for one release, applied for real; cluster-scoped objects are deleted when
/// the test ends (the namespace takes the rest).
struct ChartRbac {
    release: String,
    kubeconfig: PathBuf,
}

impl ChartRbac {
    fn apply(release: &str, namespace: &str, kubeconfig: &Path) -> Self {
        let chart = gitops_e2e::chart_dir();
        let kube_version = gitops_e2e::kube_version();
        let rendered = gitops_e2e::helm(
            &[
                "template",
                release,
                chart.to_str().expect("utf-8"),
                "--namespace",
                namespace,
                "--kube-version",
                &kube_version,
                "--show-only",
                "templates/serviceaccount.yaml",
                "--show-only",
                "templates/rbac.yaml",
            ],
            None,
        )
        .ok("helm template (RBAC)");
        kubectl(
            &[
                "apply",
                "--server-side",
                "--field-manager=gitops-e2e",
                "-f",
                "-",
            ],
            kubeconfig,
            Some(&rendered.stdout),
        )
        .ok("apply the chart's RBAC");
        Self {
            release: release.to_owned(),
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }
}

impl Drop for ChartRbac {
    fn drop(&mut self) {
        let _ = kubectl(
            &[
                "delete",
                "clusterrole,clusterrolebinding",
                "-l",
                &format!("app.kubernetes.io/instance={}", self.release),
                "--ignore-not-found",
                "--wait=false",
            ],
            &self.kubeconfig,
            None,
        );
    }
}

struct Scenario {
    env: &'static TestEnv,
    client: kube::Client,
    ns: TestNamespace,
    dir: tempfile::TempDir,
    _rbac: ChartRbac,
}

impl Scenario {
    async fn new(purpose: &str) -> Self {
        gitops_runtime::install_crypto_provider();
        let env = TestEnv::shared().expect("test environment");
        let (client, ns) = env
            .prepare(purpose)
            .await
            .expect("client, CRDs and namespace");
        let rbac = ChartRbac::apply(ns.name(), ns.name(), &env.kubeconfig());
        Self {
            env,
            client,
            ns,
            dir: tempfile::tempdir().expect("tempdir"),
            _rbac: rbac,
        }
    }

    fn namespace(&self) -> &str {
        self.ns.name()
    }

    /// A kubeconfig acting as `system:serviceaccount:<ns>:<account>`.
    fn kubeconfig_as(&self, account: &str) -> PathBuf {
        let path = self.dir.path().join(format!("kubeconfig-{account}"));
        impersonating_kubeconfig(
            &self.env.kubeconfig(),
            &format!("system:serviceaccount:{}:{account}", self.namespace()),
            &path,
        );
        path
    }

    /// The chart's ServiceAccount of a controller (release = namespace name).
    fn account(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.namespace())
    }

    fn admin_apply(&self, objects: &[Value]) {
        kubectl(
            &[
                "apply",
                "--server-side",
                "--field-manager=gitops-e2e",
                "-f",
                "-",
            ],
            &self.env.kubeconfig(),
            Some(&to_yaml_stream(objects)),
        )
        .ok("apply");
    }

    /// Every request `account` is allowed or denied, as the API server decides.
    fn can(&self, account: &str, verb: &str, resource: &str) -> bool {
        let output = kubectl(
            &[
                "auth",
                "can-i",
                verb,
                resource,
                "--all-namespaces",
                &format!("--as=system:serviceaccount:{}:{account}", self.namespace()),
            ],
            &self.env.kubeconfig(),
            None,
        );
        output.stdout.trim() == "yes"
    }
}

/// A controller binary running as a chart ServiceAccount, like its Deployment runs it.
struct Controller {
    child: Child,
    log: PathBuf,
    health_port: u16,
}

impl Controller {
    fn start(scenario: &Scenario, binary: &str, account: &str, env: &[(&str, String)]) -> Self {
        let (metrics_port, health_port) = (free_port(), free_port());
        let log = scenario.dir.path().join(format!("{account}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(controller_binary(binary));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", scenario.kubeconfig_as(account))
            .env("POD_NAMESPACE", scenario.namespace())
            .env("POD_NAME", format!("{account}-0"))
            .env("WATCH_NAMESPACE", scenario.namespace())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("LEASE_DURATION", "3s")
            .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
            .env("HEALTH_ADDR", format!("127.0.0.1:{health_port}"));
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("controller starts");
        Self {
            child,
            log,
            health_port,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn ready(&self) -> bool {
        http_status(&format!("http://127.0.0.1:{}/readyz", self.health_port)).await == Some(200)
    }

    async fn stop(mut self) -> String {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        self.log()
    }
}

/// Status code of an HTTP GET.
async fn http_status(url: &str) -> Option<u16> {
    reqwest::get(url).await.ok().map(|r| r.status().as_u16())
}

/// The four example Service + ProxyConfig pairs, moved into `namespace` with unique provider
/// names and hosts (authentik objects and ownership records are cluster-wide).
fn examples_in(namespace: &str) -> (Vec<Value>, Vec<String>) {
    let mut objects = Vec::new();
    let mut proxyconfigs = Vec::new();
    for file in [
        "longhorn.yaml",
        "alertmanager.yaml",
        "hubble-ui.yaml",
        "home-assistant.yaml",
    ] {
        let text = std::fs::read_to_string(workspace_root().join("deploy/examples").join(file))
            .expect("example");
        for mut object in gitops_e2e::documents(&text) {
            let original = object["metadata"]["namespace"]
                .as_str()
                .expect("namespace")
                .to_owned();
            object["metadata"]["namespace"] = json!(namespace);
            if object["kind"] == "ProxyConfig" {
                let spec = &mut object["spec"];
                spec["serviceNamespace"] = json!(namespace);
                let internal = spec["internalHost"]
                    .as_str()
                    .expect("internalHost")
                    .replace(&format!(".{original}."), &format!(".{namespace}."));
                spec["internalHost"] = json!(internal);
                let host = format!(
                    "{namespace}-{}",
                    spec["externalHost"].as_str().expect("externalHost")
                );
                spec["externalHost"] = json!(host);
                let provider = format!(
                    "{}-{namespace}",
                    spec["authentikConfig"]["providerName"]
                        .as_str()
                        .expect("providerName")
                );
                spec["authentikConfig"]["providerName"] = json!(provider);
                proxyconfigs.push(
                    object["metadata"]["name"]
                        .as_str()
                        .expect("name")
                        .to_owned(),
                );
            }
            objects.push(object);
        }
    }
    (objects, proxyconfigs)
}

fn proxyconfigs(scenario: &Scenario) -> Api<gitops_crd::ProxyConfig> {
    Api::namespaced(scenario.client.clone(), scenario.namespace())
}

async fn wait_ready(scenario: &Scenario, controller: &Controller, name: &str) {
    let api = proxyconfigs(scenario);
    let reached = poll_until(&format!("ProxyConfig {name} Ready"), WAIT, || {
        let api = api.clone();
        async move {
            let pc = api.get_opt(name).await?;
            Ok(pc.filter(|pc| {
                pc.status.as_ref().is_some_and(|s| {
                    s.phase == Some(gitops_crd::Phase::Ready)
                        && s.observed_generation == pc.metadata.generation
                })
            }))
        }
    })
    .await;
    if let Err(error) = reached {
        let status = api
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|pc| pc.status);
        panic!(
            "{error}\nstatus: {status:#?}\ncontroller log:\n{}",
            controller.log()
        );
    }
}

async fn wait_gone(scenario: &Scenario, controller: &Controller, name: &str) {
    let api = proxyconfigs(scenario);
    let gone = poll_until(&format!("ProxyConfig {name} deleted"), WAIT, || {
        let api = api.clone();
        async move { Ok(api.get_opt(name).await?.is_none().then_some(())) }
    })
    .await;
    if let Err(error) = gone {
        panic!("{error}\ncontroller log:\n{}", controller.log());
    }
}

fn no_forbidden(log: &str, who: &str) {
    let denied: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("forbidden") || l.contains("Forbidden"))
        .collect();
    assert!(
        denied.is_empty(),
        "{who} was denied something it does:\n{}",
        denied.join("\n")
    );
}

fn authentik_env(double: &DoubleHandle, token_file: &Path) -> Vec<(&'static str, String)> {
    std::fs::write(token_file, double.token()).expect("token file");
    vec![
        ("AUTHENTIK_HOST", double.base_url()),
        ("AUTHENTIK_TOKEN_FILE", token_file.display().to_string()),
    ]
}

#[tokio::test]
async fn service_discovery_runs_its_scenario_as_the_charts_service_account() {
    let scenario = Scenario::new("rbac-sd").await;
    let ns = scenario.namespace().to_owned();
    let account = scenario.account("service-discovery");
    let double = AuthentikDouble::start(DoubleConfig::default())
        .await
        .expect("authentik double");
    let token_file = scenario.dir.path().join("token");
    let mut env = authentik_env(&double, &token_file);
    env.push(("RESYNC_INTERVAL", "2s".to_owned()));

    // Without the chart's bindings the same binary gets nowhere.
    let unbound = Controller::start(&scenario, "gitops-service-discovery", "unbound", &env);
    let refused = poll_until(
        "the API server to refuse the unbound controller",
        WAIT,
        || async { Ok(unbound.log().contains("forbidden").then_some(())) },
    )
    .await;
    assert!(!unbound.ready().await, "ready without any RBAC");
    let log = unbound.stop().await;
    assert!(
        refused.is_ok(),
        "expected forbidden errors without RBAC:\n{log}"
    );

    let (examples, names) = examples_in(&ns);
    scenario.admin_apply(&examples);
    // A Service that opts in to discovery.
    let provider = format!("discovered-{ns}");
    scenario.admin_apply(&[json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "grafana", "namespace": ns, "labels": {"authentik.io/proxy": "enabled"},
            "annotations": {"authentik.io/external-host": format!("grafana-{ns}.example.com"), "authentik.io/provider-name": provider}},
        "spec": {"ports": [{"name": "http", "port": 80}]}
    })]);

    let controller = Controller::start(&scenario, "gitops-service-discovery", &account, &env);
    for name in &names {
        wait_ready(&scenario, &controller, name).await;
    }
    wait_ready(&scenario, &controller, "grafana-proxy").await;
    let ready = poll_until("controller ready", WAIT, || async {
        Ok(controller.ready().await.then_some(()))
    })
    .await;
    assert!(
        ready.is_ok(),
        "/readyz never answered 200:\n{}",
        controller.log()
    );

    // Leader election used the chart's Role.
    let lease = Api::<Lease>::namespaced(scenario.client.clone(), &ns)
        .get("gitops-service-discovery")
        .await
        .expect("Lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        Some(format!("{account}-0"))
    );
    // Events were recorded (events.k8s.io).
    let events = kubectl(
        &[
            "get",
            "events.events.k8s.io",
            "-n",
            &ns,
            "-o",
            "jsonpath={.items[*].reportingController}",
        ],
        &scenario.env.kubeconfig(),
        None,
    )
    .ok("events");
    assert!(
        events.stdout.contains("gitops-service-discovery"),
        "no Events from the controller: {}",
        events.stdout
    );

    // Opting out removes the discovered ProxyConfig; deleting the others runs their finalizers.
    let unlabel = json!({"metadata": {"labels": {"authentik.io/proxy": null}}});
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(scenario.client.clone(), &ns)
        .patch("grafana", &PatchParams::default(), &Patch::Merge(&unlabel))
        .await
        .expect("unlabel");
    wait_gone(&scenario, &controller, "grafana-proxy").await;
    for name in &names {
        proxyconfigs(&scenario)
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    for name in &names {
        wait_gone(&scenario, &controller, name).await;
    }
    assert!(
        double.providers().iter().all(|p| !p.name.ends_with(&ns)),
        "authentik objects left behind"
    );

    let log = controller.stop().await;
    no_forbidden(&log, &account);
    for (verb, resource) in [
        ("get", "secrets"),
        ("list", "configmaps"),
        ("update", "proxyconfigs.gitops.io"),
        ("delete", "jobs.batch"),
        ("delete", "services"),
    ] {
        assert!(
            !scenario.can(&account, verb, resource),
            "{account} may {verb} {resource}"
        );
    }
}

/// The cleanup controller as the chart's ServiceAccount: a finished Job past its TTL is deleted,
/// and an orphaned authentik provider this product created is swept with its record.
#[tokio::test]
async fn cleanup_runs_its_scenario_as_the_charts_service_account() {
    let scenario = Scenario::new("rbac-cleanup").await;
    let ns = scenario.namespace().to_owned();
    let account = scenario.account("cleanup");
    let double = AuthentikDouble::start(DoubleConfig::default())
        .await
        .expect("authentik double");
    let token_file = scenario.dir.path().join("token");
    let mut env = authentik_env(&double, &token_file);
    env.extend([
        ("COMPLETED_JOBS_TTL", "2s".to_owned()),
        ("FAILED_JOBS_TTL", "2s".to_owned()),
        ("CLEANUP_INTERVAL", "5s".to_owned()),
        ("ORPHANED_PROVIDERS_MAX_AGE", "1s".to_owned()),
        ("POD_CLEANUP", "true".to_owned()),
        ("ORPHAN_POD_TTL", "1s".to_owned()),
    ]);
    // A finished Pod without an owner.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(scenario.client.clone(), &ns);
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": "leftover", "namespace": ns},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .expect("pod");
    pods.create(&Default::default(), &pod)
        .await
        .expect("create Pod");
    let finished = json!({"status": {"phase": "Succeeded", "containerStatuses": [{"name": "c", "image": "busybox",
        "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "finishedAt": "2020-01-01T00:00:00Z"}}}]}});
    pods.patch_status(
        "leftover",
        &PatchParams::default(),
        &Patch::Merge(&finished),
    )
    .await
    .expect("mark Pod finished");

    // A Job finished long ago (marked through the status subresource; managedBy keeps the Job
    // controller away, as the test environment has no kubelet).
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(scenario.client.clone(), &ns);
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "metadata": {"name": "finished", "namespace": ns},
        "spec": {"managedBy": "example.com/external", "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .expect("job");
    jobs.create(&Default::default(), &job)
        .await
        .expect("create Job");
    let long_ago = "2020-01-01T00:00:00Z";
    let status = json!({"status": {"startTime": long_ago, "completionTime": long_ago, "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": long_ago},
            {"type": "Complete", "status": "True", "lastTransitionTime": long_ago}]}});
    jobs.patch_status("finished", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("mark finished");

    // An authentik provider this product created whose ProxyConfig is gone: its ownership record
    // is marked orphaned (status), re-read and deleted after the grace period.
    let provider_name = format!("orphan-{ns}");
    let pk = double.create_foreign_provider(&provider_name);
    let record_name = record_name(AuthentikKind::Provider, &provider_name);
    let records: Api<AuthentikObject> = Api::all(scenario.client.clone());
    let record = AuthentikObject::new(
        &record_name,
        AuthentikObjectSpec {
            kind: AuthentikKind::Provider,
            authentik_name: provider_name.clone(),
            authentik_id: Some(pk.to_string()),
            claimed_by: ProxyConfigRef {
                namespace: ns.clone(),
                name: "gone".into(),
                uid: "00000000-0000-0000-0000-000000000000".into(),
            },
            origin: Origin::Created,
            application: None,
        },
    );
    records
        .create(&Default::default(), &record)
        .await
        .expect("create record");

    let controller = Controller::start(&scenario, "gitops-cleanup", &account, &env);
    // (Whether the authentik object itself goes is the cleanup crate's own tests' business;
    // here it is the Kubernetes side: get, status patch and delete of the record.)
    let swept = poll_until("orphaned record swept", WAIT, || {
        let records = records.clone();
        let record_name = record_name.clone();
        async move { Ok(records.get_opt(&record_name).await?.is_none().then_some(())) }
    })
    .await;
    if let Err(error) = swept {
        let _ = records.delete(&record_name, &DeleteParams::default()).await;
        panic!("{error}\ncontroller log:\n{}", controller.log());
    }
    let gone = poll_until("finished Job deleted", WAIT, || {
        let jobs = jobs.clone();
        async move { Ok(jobs.get_opt("finished").await?.is_none().then_some(())) }
    })
    .await;
    if let Err(error) = gone {
        panic!("{error}\ncontroller log:\n{}", controller.log());
    }
    let pod_gone = poll_until("finished owner-less Pod deleted", WAIT, || {
        let pods = pods.clone();
        async move { Ok(pods.get_opt("leftover").await?.is_none().then_some(())) }
    })
    .await;
    if let Err(error) = pod_gone {
        panic!("{error}\ncontroller log:\n{}", controller.log());
    }
    let ready = poll_until("controller ready", WAIT, || async {
        Ok(controller.ready().await.then_some(()))
    })
    .await;
    assert!(
        ready.is_ok(),
        "/readyz never answered 200:\n{}",
        controller.log()
    );
    let lease = Api::<Lease>::namespaced(scenario.client.clone(), &ns)
        .get("gitops-cleanup")
        .await
        .expect("Lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        Some(format!("{account}-0"))
    );

    let log = controller.stop().await;
    no_forbidden(&log, &account);
    for (verb, resource) in [
        ("get", "secrets"),
        ("create", "jobs.batch"),
        ("patch", "proxyconfigs.gitops.io"),
        ("list", "services"),
    ] {
        assert!(
            !scenario.can(&account, verb, resource),
            "{account} may {verb} {resource}"
        );
    }
}
