//! `cargo xtask demo [--exit-when-ready]`: the whole product on this machine, in one command.
//!
//! Builds the binaries, starts a private test environment (etcd + kube-apiserver +
//! kube-controller-manager), the authentik double and both controllers as local processes,
//! applies `deploy/examples/`, creates a finished Job, waits until every ProxyConfig is Ready
//! and the Job has been cleaned up, then prints `kubectl gitops health`/`verify` and what was
//! created in authentik. It stays up until Ctrl-C (or ends with `--exit-when-ready`) and always
//! stops what it started.
//!
//! `--in-cluster` tells the same story with the controllers as Pods of the Helm chart: the
//! environment gets a node (see the README's test-environment section), the images from
//! `cargo xtask image` are imported into it, the double listens on the node's address and
//! `helm install` deploys release `gitops-lifecycle-management` into `flux-system`.
//!
//! Contract mode (`GITOPS_TEST_AUTHENTIK_URL` and `_TOKEN` set): no double; the controllers
//! talk to that authentik. Each example's provider name and application slug carry a mark of
//! this run (`demo-<hex>`), `verify` is judged on the examples' findings only, and the examples'
//! ProxyConfigs are deleted before the controllers stop, so their finalizers remove exactly
//! what the run created.
//!
//! Plain processes and kubectl only: no async runtime, so every step is easy to follow.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gitops_testenv::{ControlPlane, pins, shared};
use nix::sys::signal::{SigSet, Signal};
use serde_json::{Value, json};

/// Token the demo's authentik double accepts.
const TOKEN: &str = "gitops-demo-token";
/// How long convergence may take before the demo gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// Namespace of the finished Job the cleanup controller must remove.
const JOB_NAMESPACE: &str = "default";
const JOB_NAME: &str = "demo-finished-job";

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// End after the report (exit 0), instead of waiting for Ctrl-C.
    pub exit_when_ready: bool,
    /// The controllers as Pods of the chart on a test node, instead of local processes.
    pub in_cluster: bool,
}

/// The chart's release, as users install it.
const RELEASE: &str = "gitops-lifecycle-management";
const RELEASE_NAMESPACE: &str = "flux-system";

/// What the demo started; dropping it stops everything, in reverse order.
struct Running {
    plane: ControlPlane,
    children: Vec<(&'static str, Child)>,
    /// Contract mode: the example namespaces whose ProxyConfigs are deleted (and their
    /// authentik objects with them) while the controllers still run.
    remove_examples: Option<(Kubectl, Vec<String>)>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some((kubectl, namespaces)) = self.remove_examples.take() {
            step(
                "deleting the examples' ProxyConfigs: the controller removes their authentik objects",
            );
            for namespace in namespaces {
                let deleted = kubectl.run(
                    &[
                        "delete",
                        "proxyconfigs",
                        "--all",
                        "-n",
                        &namespace,
                        "--wait",
                        "--timeout=120s",
                    ],
                    None,
                );
                if let Err(error) = deleted {
                    eprintln!("==> demo: {error}; authentik objects of this run may remain");
                }
            }
        }
        for (name, child) in self.children.iter_mut().rev() {
            // SIGTERM first so controllers shut down cleanly; SIGKILL if they hang.
            let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
            let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("==> demo: stopped {name}");
        }
        match self.plane.stop() {
            Ok(()) => eprintln!("==> demo: test environment stopped"),
            Err(error) => eprintln!("==> demo: stopping the test environment failed: {error}"),
        }
    }
}

pub fn run(root: &Path, options: Options) -> Result<()> {
    let external = crate::contract::external_authentik()?;
    if external.is_some() && options.in_cluster {
        bail!(
            "contract mode ({}) runs the controllers as local processes; drop --in-cluster",
            crate::contract::URL_VARIABLE
        );
    }
    step("building the controllers, the authentik double and kubectl-gitops");
    let status = crate::run::cargo_command()
        .args([
            "build",
            "-p",
            "gitops-service-discovery",
            "-p",
            "gitops-cleanup",
            "-p",
            "authentik-double",
            "-p",
            "kubectl-gitops",
        ])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    let bin = target_dir(root).join("debug");
    if options.in_cluster {
        step("building the controller images (cargo xtask image)");
        crate::image::run(root, &crate::image::Args::default())?;
    }

    let plane = if options.in_cluster {
        step(
            "starting a private test environment with a node (builds the pinned tools on first use)",
        );
        ControlPlane::start_with_node()?
    } else {
        step(
            "starting a private test environment (builds the pinned Kubernetes and etcd on first use)",
        );
        shared::start_private(std::process::id())?
    };
    let mut running = Running {
        plane,
        children: Vec::new(),
        remove_examples: None,
    };
    let kubeconfig = running.plane.kubeconfig();
    let logs = running.plane.dir().join("logs");
    let kubectl = Kubectl {
        binary: pins::binary("kubernetes", "kubectl")?,
        kubeconfig: kubeconfig.clone(),
    };

    step("installing the CRDs");
    for crd in ["proxyconfig-crd.yaml", "authentikobject-crd.yaml"] {
        let path = root.join("deploy/crds").join(crd);
        if path.exists() {
            kubectl.run(
                &["apply", "--server-side", "-f", &path.to_string_lossy()],
                None,
            )?;
        }
    }
    kubectl.run(
        &[
            "wait",
            "--for=condition=Established",
            "crd/proxyconfigs.gitops.io",
            "--timeout=60s",
        ],
        None,
    )?;

    let (authentik_url, token, double_addr) = match &external {
        Some(external) => {
            step(&format!("contract mode: the authentik at {}", external.url));
            (external.url.clone(), external.token.clone(), None)
        }
        None => {
            step("starting the authentik double");
            // Pods reach the node's address, not the host's loopback.
            let double_ip = if options.in_cluster {
                IpAddr::V4(gitops_testenv::NODE_IP)
            } else {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            };
            let double_addr = free_addr_on(double_ip)?;
            running.children.push((
                "authentik-double",
                spawn(
                    Command::new(bin.join("authentik-double")).args([
                        "--listen",
                        &double_addr.to_string(),
                        "--token",
                        TOKEN,
                    ]),
                    &logs,
                    "authentik-double",
                )?,
            ));
            wait_for_port(double_addr)?;
            (
                format!("http://{double_addr}"),
                TOKEN.to_owned(),
                Some(double_addr),
            )
        }
    };

    if options.in_cluster {
        install_chart(root, &running.plane, &kubectl, &authentik_url)?;
    } else {
        start_controllers(
            &bin,
            &kubeconfig,
            &authentik_url,
            &token,
            &logs,
            &mut running,
        )?;
    }

    step("applying deploy/examples/");
    let examples = root.join("deploy/examples");
    let expected = example_proxyconfigs(&examples)?;
    for namespace in namespaces_of(&expected) {
        let manifest =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        kubectl.run(&["apply", "-f", "-"], Some(&manifest.to_string()))?;
    }
    let mark = external.as_ref().map(|_| run_mark());
    match &mark {
        None => {
            kubectl.run(&["apply", "-f", &examples.to_string_lossy()], None)?;
        }
        Some(mark) => {
            running.remove_examples = Some((kubectl.clone(), namespaces_of(&expected)));
            for document in marked_examples(&examples, mark)? {
                kubectl.run(&["apply", "-f", "-"], Some(&document.to_string()))?;
            }
        }
    }

    step("creating a finished Job for the cleanup controller");
    create_finished_job(&kubectl)?;

    step(&format!(
        "waiting until {} ProxyConfigs are Ready and the Job is cleaned up",
        expected.len()
    ));
    wait_converged(&kubectl, expected.len(), &logs, &mut running)?;

    let cli = bin.join("kubectl-gitops");
    let cli_env = [
        ("KUBECONFIG", kubeconfig.to_string_lossy().into_owned()),
        ("AUTHENTIK_HOST", authentik_url.clone()),
        ("AUTHENTIK_TOKEN", token.clone()),
    ];
    step("kubectl gitops health (no Helm release here: the controllers run as local processes)");
    let health = Command::new(&cli)
        .arg("health")
        .envs(cli_env.clone())
        .status()?;
    eprintln!("(health exit code {})", health.code().unwrap_or(-1));
    step("kubectl gitops verify");
    let verify = Command::new(&cli)
        .arg("verify")
        .envs(cli_env.clone())
        .status()?;
    match (&mark, double_addr) {
        (None, Some(double_addr)) => {
            if !verify.success() {
                bail!(
                    "kubectl gitops verify found differences ({verify}); logs in {}",
                    logs.display()
                );
            }
            step("authentik objects created");
            print_authentik(&http_get_json(double_addr, "/_double/state")?);
        }
        _ => {
            // A real server's outposts may hold other people's providers: judge the examples'.
            let output = Command::new(&cli)
                .args(["verify", "-o", "json"])
                .envs(cli_env.clone())
                .output()?;
            let report: Value = serde_json::from_slice(&output.stdout)
                .context("kubectl gitops verify -o json printed no JSON")?;
            let ours = findings_about_examples(&report, &expected, mark.as_deref());
            if !ours.is_empty() {
                bail!(
                    "kubectl gitops verify found differences in the examples: {ours:?}; logs in {}",
                    logs.display()
                );
            }
        }
    }

    println!();
    println!("The demo is up. In another shell:");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    if external.is_some() {
        println!("  export AUTHENTIK_HOST={authentik_url} AUTHENTIK_TOKEN=...   # your token");
    } else {
        println!(
            "  export AUTHENTIK_HOST={authentik_url} AUTHENTIK_TOKEN={TOKEN}   # the double's demo token"
        );
    }
    println!(
        "  export PATH={}:$PATH                # kubectl gitops …",
        bin.display()
    );
    println!("  {} get proxyconfigs -A", kubectl.binary.display());
    println!("Logs: {}", logs.display());
    if options.exit_when_ready {
        step("ready; --exit-when-ready: stopping");
        return Ok(());
    }
    println!("Press Ctrl-C to stop everything.");
    wait_for_interrupt()?;
    Ok(())
    // `running` drops here: children stopped, environment removed.
}

fn step(what: &str) {
    eprintln!("==> demo: {what}");
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn free_addr() -> Result<SocketAddr> {
    free_addr_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn free_addr_on(ip: IpAddr) -> Result<SocketAddr> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?)
}

/// Both controllers as local processes (leader election off).
fn start_controllers(
    bin: &Path,
    kubeconfig: &Path,
    authentik_url: &str,
    token: &str,
    logs: &Path,
    running: &mut Running,
) -> Result<()> {
    step("starting both controllers (leader election off)");
    let common = |command: &mut Command| -> Result<()> {
        command
            .env("KUBECONFIG", kubeconfig)
            .env("AUTHENTIK_HOST", authentik_url)
            .env("AUTHENTIK_TOKEN", token)
            .env("LEADER_ELECTION", "false")
            .env("LOG_FORMAT", "json")
            .env("METRICS_ADDR", free_addr()?.to_string())
            .env("HEALTH_ADDR", free_addr()?.to_string());
        Ok(())
    };
    let mut discovery = Command::new(bin.join("gitops-service-discovery"));
    common(&mut discovery)?;
    discovery.env("RESYNC_INTERVAL", "30s");
    running.children.push((
        "gitops-service-discovery",
        spawn(&mut discovery, logs, "gitops-service-discovery")?,
    ));
    let mut cleanup = Command::new(bin.join("gitops-cleanup"));
    common(&mut cleanup)?;
    cleanup
        .env("COMPLETED_JOBS_TTL", "5s")
        .env("FAILED_JOBS_TTL", "5s")
        .env("CLEANUP_INTERVAL", "30s");
    running.children.push((
        "gitops-cleanup",
        spawn(&mut cleanup, logs, "gitops-cleanup")?,
    ));
    Ok(())
}

/// Both controllers as Pods: the images imported into the node, the token Secret, and
/// `helm install` of the chart (as the README's "Installing" says) with the same short
/// retention and resync as the local processes.
fn install_chart(
    root: &Path,
    plane: &ControlPlane,
    kubectl: &Kubectl,
    double_url: &str,
) -> Result<()> {
    step("importing the images into the node and installing the chart (helm install --wait)");
    let mut sets = vec![
        format!("authentik.host={double_url}"),
        "authentik.existingSecret=authentik-token".to_owned(),
        // The CRDs are applied above, like `kubectl apply -f deploy/crds`.
        "crds.install=false".to_owned(),
        // No Prometheus operator in the demo cluster.
        "serviceMonitor.enabled=false".to_owned(),
        "prometheusRule.enabled=false".to_owned(),
        "serviceDiscovery.resyncInterval=30s".to_owned(),
        "cleanup.completedJobsTTL=5s".to_owned(),
        "cleanup.failedJobsTTL=5s".to_owned(),
        "cleanup.interval=30s".to_owned(),
    ];
    for (name, key) in [
        ("gitops-service-discovery", "serviceDiscovery"),
        ("gitops-cleanup", "cleanup"),
    ] {
        let archive = gitops_testenv::images::archive_path(root, name);
        let image = gitops_testenv::images::read_archive(&archive)?;
        plane.import_image(&archive)?;
        let (registry, rest) = image
            .reference
            .split_once('/')
            .with_context(|| format!("image reference {} has no registry", image.reference))?;
        let (repository, tag) = rest
            .rsplit_once(':')
            .with_context(|| format!("image reference {} has no tag", image.reference))?;
        sets.extend([
            format!("image.registry={registry}"),
            format!("{key}.image.repository={repository}"),
            format!("{key}.image.tag={tag}"),
        ]);
    }
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELEASE_NAMESPACE}});
    kubectl.run(&["apply", "-f", "-"], Some(&namespace.to_string()))?;
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "authentik-token", "namespace": RELEASE_NAMESPACE},
        "stringData": {"token": TOKEN},
    });
    kubectl.run(&["apply", "-f", "-"], Some(&secret.to_string()))?;
    let chart = root.join("charts").join(RELEASE);
    let mut helm = Command::new(pins::binary("helm", "helm")?);
    helm.env("KUBECONFIG", &kubectl.kubeconfig)
        .arg("install")
        .arg(RELEASE)
        .arg(&chart)
        .args(["--namespace", RELEASE_NAMESPACE, "--wait", "--timeout=3m"]);
    for set in &sets {
        helm.arg(format!("--set={set}"));
    }
    let output = helm.output().context("running helm")?;
    if !output.status.success() {
        bail!(
            "helm install: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn spawn(command: &mut Command, logs: &Path, name: &str) -> Result<Child> {
    let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {name}"))
}

fn wait_for_port(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after 20s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[derive(Clone)]
struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// Runs kubectl; its stdout, or an error with its stderr.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut child = Command::new(&self.binary)
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// `(namespace, name)` of every ProxyConfig in the example files.
/// The YAML files of `deploy/examples/`.
fn example_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn example_proxyconfigs(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    for path in example_files(dir)? {
        let text = std::fs::read_to_string(&path)?;
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
            .with_context(|| format!("reading {}", path.display()))?;
        for document in documents.iter().filter(|d| d["kind"] == "ProxyConfig") {
            let field = |key: &str| {
                document["metadata"][key]
                    .as_str()
                    .unwrap_or("default")
                    .to_owned()
            };
            found.push((field("namespace"), field("name")));
        }
    }
    if found.is_empty() {
        bail!("no ProxyConfig in {}", dir.display());
    }
    Ok(found)
}

/// This run's mark for its authentik names: `demo-` and 8 hex digits from the clock and pid.
fn run_mark() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("demo-{:08x}", nanos ^ std::process::id().rotate_left(16))
}

/// The examples' documents, each ProxyConfig's provider name and application slug carrying
/// `mark` (so the run never meets an authentik object it did not create).
fn marked_examples(dir: &Path, mark: &str) -> Result<Vec<Value>> {
    let mut documents = Vec::new();
    for path in example_files(dir)? {
        let text = std::fs::read_to_string(&path)?;
        let mut found: Vec<Value> = serde_saphyr::from_multiple(&text)
            .with_context(|| format!("reading {}", path.display()))?;
        for document in found.iter_mut().filter(|d| d["kind"] == "ProxyConfig") {
            let text = |value: &Value, default: &str| value.as_str().unwrap_or(default).to_owned();
            let name = text(&document["metadata"]["name"], "");
            let config = &mut document["spec"]["authentikConfig"];
            let provider = text(&config["providerName"], &name);
            config["providerName"] = json!(format!("{provider}-{mark}"));
            config["applicationSlug"] = json!(format!("{mark}-{name}"));
        }
        documents.extend(found);
    }
    Ok(documents)
}

/// verify's findings about the examples (by ProxyConfig or by this run's mark).
fn findings_about_examples(
    report: &Value,
    examples: &[(String, String)],
    mark: Option<&str>,
) -> Vec<Value> {
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    findings
        .into_iter()
        .filter(|finding| {
            let text = finding.to_string();
            mark.is_some_and(|mark| text.contains(mark))
                || examples
                    .iter()
                    .any(|(namespace, name)| text.contains(&format!("{namespace}/{name}")))
        })
        .collect()
}

fn namespaces_of(proxyconfigs: &[(String, String)]) -> Vec<String> {
    let mut namespaces: Vec<String> = proxyconfigs.iter().map(|(ns, _)| ns.clone()).collect();
    namespaces.sort();
    namespaces.dedup();
    namespaces
}

/// A Job that has just finished. `spec.managedBy` keeps kube-controller-manager's Job
/// controller away, so the status set here stays as written (there is no kubelet to run it).
fn create_finished_job(kubectl: &Kubectl) -> Result<()> {
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": JOB_NAME, "namespace": JOB_NAMESPACE},
        "spec": {
            "managedBy": "gitops.io/demo",
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "job", "image": "busybox"}]}}
        }
    });
    kubectl.run(&["apply", "-f", "-"], Some(&job.to_string()))?;
    let at = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "startTime": at, "completionTime": at, "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": at},
            {"type": "Complete", "status": "True", "lastTransitionTime": at}
        ]
    }});
    kubectl.run(
        &[
            "patch",
            "job",
            JOB_NAME,
            "-n",
            JOB_NAMESPACE,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ],
        None,
    )?;
    Ok(())
}

fn wait_converged(
    kubectl: &Kubectl,
    expected: usize,
    logs: &Path,
    running: &mut Running,
) -> Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let list: Value = serde_json::from_str(
            &kubectl.run(&["get", "proxyconfigs", "-A", "-o", "json"], None)?,
        )?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let ready = items
            .iter()
            .filter(|pc| pc["status"]["phase"] == "Ready")
            .count();
        let job_left = !kubectl
            .run(
                &[
                    "get",
                    "job",
                    JOB_NAME,
                    "-n",
                    JOB_NAMESPACE,
                    "--ignore-not-found",
                    "-o",
                    "name",
                ],
                None,
            )?
            .trim()
            .is_empty();
        let state = format!(
            "{ready}/{expected} ProxyConfigs Ready; finished Job {}",
            if job_left {
                "still there"
            } else {
                "cleaned up"
            }
        );
        if state != last {
            eprintln!("    {state} ({}s)", started.elapsed().as_secs());
            last = state;
        }
        if ready >= expected && !job_left {
            return Ok(());
        }
        for (name, child) in &mut running.children {
            // A crashed controller will not converge anything: say so now.
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{name} exited ({status}); see {}",
                    logs.join(format!("{name}.log")).display()
                );
            }
        }
        if started.elapsed() > READY_TIMEOUT {
            let phases: Vec<String> = items
                .iter()
                .map(|pc| {
                    format!(
                        "{}/{}: {}",
                        pc["metadata"]["namespace"].as_str().unwrap_or_default(),
                        pc["metadata"]["name"].as_str().unwrap_or_default(),
                        pc["status"]["phase"].as_str().unwrap_or("no status")
                    )
                })
                .collect();
            bail!(
                "not converged after {}s: {last} [{}]; controller logs in {}",
                READY_TIMEOUT.as_secs(),
                phases.join(", "),
                logs.display()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A GET on the double's loopback admin API (HTTP/1.0: the server closes when done).
fn http_get_json(addr: SocketAddr, path: &str) -> Result<Value> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (_, body) = response
        .split_once("\r\n\r\n")
        .context("the double's answer has no body")?;
    serde_json::from_str(body).context("the double's state is not JSON")
}

fn print_authentik(state: &Value) {
    let list = |key: &str| state[key].as_array().cloned().unwrap_or_default();
    println!("proxy providers:");
    for p in list("providers") {
        println!(
            "  pk {:<3} {:<28} {} -> {}",
            p["pk"].as_i64().unwrap_or_default(),
            p["name"].as_str().unwrap_or_default(),
            p["external_host"].as_str().unwrap_or_default(),
            p["internal_host"].as_str().unwrap_or_default()
        );
    }
    println!("applications:");
    for a in list("applications") {
        println!(
            "  {:<36} provider {}",
            a["slug"].as_str().unwrap_or_default(),
            a["provider"]
        );
    }
    for o in list("outposts") {
        println!(
            "outpost {:?}: providers {}",
            o["name"].as_str().unwrap_or_default(),
            o["providers"]
        );
    }
}

/// Blocks until SIGINT (Ctrl-C) or SIGTERM. The children were started before the signals were
/// blocked, so they keep their own handling.
fn wait_for_interrupt() -> Result<()> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block()?;
    let signal = signals.wait()?;
    eprintln!();
    step(&format!("{signal}: stopping"));
    Ok(())
}
