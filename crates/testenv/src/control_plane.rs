//! One environment: etcd, kube-apiserver and kube-controller-manager as processes on free
//! loopback ports, with everything they need (data, certificates, kubeconfigs, logs, pid files)
//! in one temporary directory.
//!
//! The processes run in their own process group, so they outlive the process that started them
//! (that is how `testenv up` and test binaries share one environment) and a Ctrl-C in the
//! starting terminal does not reach them. They are stopped by the pid in their pid file, after
//! checking that the process's command line still names this environment's directory.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kube::Client;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::node::NODE_COMPONENTS;
use crate::pins;
use crate::pki::{self, ADMIN_USER, Pki, TOKEN_USER};
use crate::util::{block_on, tail};
use crate::wait::poll_until;

/// The processes of an environment, in start order. The watchdog (see `shared`) is not one.
pub const COMPONENTS: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];

/// The watchdog's pid-file name.
pub(crate) const WATCHDOG: &str = "watchdog";

/// Service IPs are allocated from here; only the Pods of an environment with a node dial them
/// (kube-proxy), but Services need a range.
pub(crate) const SERVICE_CIDR: &str = "10.0.0.0/24";
const FIRST_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

const START_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Written to `<dir>/environment.json` once the environment is ready.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentInfo {
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// `http://127.0.0.1:<port>`.
    pub etcd: String,
    /// The pinned Kubernetes version running.
    pub kubernetes_version: String,
    /// Seconds since the Unix epoch when it became ready.
    pub started_unix: u64,
    /// The Node's name when the environment has one (see [`ControlPlane::start_with_node`]).
    #[serde(default)]
    pub node: Option<String>,
}

/// A started (or found) environment.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    dir: PathBuf,
    info: EnvironmentInfo,
}

/// Whether one process of an environment runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessStatus {
    pub name: &'static str,
    pub pid: Option<i32>,
    pub running: bool,
}

impl ControlPlane {
    /// Builds the pinned tools if needed, then starts etcd, kube-apiserver and
    /// kube-controller-manager in a new temporary directory and waits until they work.
    /// On failure everything started so far is stopped and removed again.
    pub fn start() -> Result<Self> {
        Self::start_in_new_dir(false, false)
    }

    /// Like [`ControlPlane::start`], plus a node (containerd, kubelet, kube-proxy,
    /// kube-scheduler; see the `node` module): Pods run. kube-apiserver then listens on
    /// [`crate::NODE_IP`] instead of loopback, and the `kubernetes` Service leads to it. One
    /// node runs per machine at a time.
    pub fn start_with_node() -> Result<Self> {
        Self::start_in_new_dir(true, false)
    }

    /// Like [`ControlPlane::start_with_node`], watched from the first moment by a watchdog
    /// that stops the node should this (test) process die without stopping it (see the
    /// `node_watchdog` module).
    pub(crate) fn start_with_watched_node() -> Result<Self> {
        Self::start_in_new_dir(true, true)
    }

    fn start_in_new_dir(with_node: bool, watched: bool) -> Result<Self> {
        let mut tools = vec!["kubernetes", "etcd"];
        if with_node {
            crate::node::check_machine_is_free()?;
            tools.extend(["containerd", "runc", "cni-plugins", "crane"]);
        }
        crate::tools::ensure_tools(&tools)?;
        let dir = tempfile::Builder::new()
            .prefix("gitops-testenv-")
            .tempdir()
            .context(|| "creating the environment's directory".to_owned())?
            .keep();
        let started = Instant::now();
        eprintln!("testenv: starting in {}", dir.display());
        let result = block_on(start_in(dir.clone(), with_node, watched)).and_then(|result| result);
        match result {
            Ok(plane) => {
                eprintln!(
                    "testenv: ready in {:.1}s at {}",
                    started.elapsed().as_secs_f64(),
                    plane.info.server
                );
                Ok(plane)
            }
            Err(error) => {
                if let Err(cleanup) = remove_failed_start(&dir) {
                    eprintln!(
                        "testenv: cleaning up after the failed start in {}: {cleanup}",
                        dir.display()
                    );
                }
                Err(error)
            }
        }
    }

    /// The environment recorded in `dir` (whether or not its processes still run).
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("environment.json");
        let text = std::fs::read_to_string(&path).map_err(|error| Error::NotRunning {
            dir: dir.to_owned(),
            reason: format!("cannot read {}: {error}", path.display()),
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            info: serde_json::from_str(&text)?,
        })
    }

    /// The environment's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Admin kubeconfig (client certificate in `system:masters`; context
    /// `gitops-testenv-token` uses the static token instead).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Where the API server, ports and version are recorded.
    pub fn info(&self) -> &EnvironmentInfo {
        &self.info
    }

    /// Whether Pods run here (started with [`ControlPlane::start_with_node`]).
    pub fn has_node(&self) -> bool {
        self.info.node.is_some()
    }

    /// Imports an image archive (an OCI layout tarball as `cargo xtask image` writes) into the
    /// node's containerd, so Pods can use it without a registry (`imagePullPolicy:
    /// IfNotPresent`). A missing or broken archive is one line naming it, not a runtime error.
    pub fn import_image(&self, archive: &Path) -> Result<()> {
        if !self.has_node() {
            return Err(Error::NotRunning {
                dir: self.dir.clone(),
                reason: "this environment has no node to import images into".into(),
            });
        }
        crate::images::read_archive(archive)?;
        crate::node::import_image(&self.dir, archive)
    }

    /// The component processes and whether each runs.
    pub fn processes(&self) -> Vec<ProcessStatus> {
        let node: &[&'static str] = if self.has_node() {
            &NODE_COMPONENTS
        } else {
            &[]
        };
        COMPONENTS
            .iter()
            .chain(node)
            .map(|name| {
                let pid = read_pid(&self.dir, name);
                ProcessStatus {
                    name,
                    pid,
                    running: pid.is_some_and(|pid| is_ours(pid, &self.dir)),
                }
            })
            .collect()
    }

    /// Every component process runs.
    pub fn is_running(&self) -> bool {
        self.processes().iter().all(|process| process.running)
    }

    /// Stops exactly this environment's processes (by pid file) and removes its directory.
    pub fn stop(&self) -> Result<()> {
        stop_dir(&self.dir)
    }

    /// Stops one component (`etcd`, `kube-apiserver`, `kube-controller-manager`) and starts it
    /// again with the same command line, as a crash-and-restart of that process; returns once
    /// it serves again. For reliability tests of what runs against the environment.
    pub async fn restart(&self, name: &str) -> Result<()> {
        stop_process(&self.dir, name)?;
        let text = std::fs::read(command_path(&self.dir, name))
            .context(|| format!("reading the command line of {name}"))?;
        let (binary, args): (PathBuf, Vec<String>) = serde_json::from_slice(&text)?;
        let component = COMPONENTS
            .iter()
            .chain(&NODE_COMPONENTS)
            .copied()
            .find(|c| *c == name)
            .ok_or_else(|| Error::NotRunning {
                dir: self.dir.clone(),
                reason: format!("{name} is not a component"),
            })?;
        let mut child = spawn(&self.dir, name, &binary, &args)?;
        let client = self.client().await?;
        let etcd = self.info.etcd.trim_start_matches("http://").to_owned();
        wait_for(&self.dir, component, &mut child, || {
            let (client, etcd) = (client.clone(), etcd.clone());
            async move {
                match component {
                    "etcd" => Ok(tokio::net::TcpStream::connect(etcd).await.ok().map(drop)),
                    _ => readyz(&client).await,
                }
            }
        })
        .await?;
        // Dropping `child` leaves the process running; it is stopped by pid like the others.
        Ok(())
    }

    /// Freezes one component (SIGSTOP) until the returned guard is dropped: a process that
    /// still holds its port, so connections are accepted but never answered, which is how a
    /// hung API server looks to its clients.
    pub fn freeze(&self, name: &str) -> Result<Frozen> {
        let pid = read_pid(&self.dir, name)
            .filter(|pid| is_ours(*pid, &self.dir))
            .ok_or_else(|| Error::NotRunning {
                dir: self.dir.clone(),
                reason: format!("{name} is not running"),
            })?;
        let pid = Pid::from_raw(pid);
        kill(pid, Signal::SIGSTOP).map_err(|errno| Error::NotRunning {
            dir: self.dir.clone(),
            reason: format!("cannot stop {name}: {errno}"),
        })?;
        Ok(Frozen { pid })
    }

    /// Stops one component for good (see [`restart`](Self::restart) to bring it back): its port
    /// is closed, so clients get "connection refused", which is how a gone API server looks.
    pub fn stop_component(&self, name: &str) -> Result<()> {
        stop_process(&self.dir, name)
    }

    /// A client with the admin kubeconfig.
    pub async fn client(&self) -> Result<Client> {
        client_for(&self.kubeconfig(), None).await
    }

    /// Whether the environment's node reports Ready (false without a node).
    pub fn is_node_ready(&self) -> bool {
        if !self.has_node() {
            return false;
        }
        let kubeconfig = self.kubeconfig();
        let answer = block_on(async move {
            let client = client_for(&kubeconfig, None).await?;
            crate::node::is_ready(&client).await
        });
        matches!(answer, Ok(Ok(true)))
    }

    /// Whether the API server answers `/readyz` with `ok` within 5 seconds.
    pub fn is_ready(&self) -> bool {
        let kubeconfig = self.kubeconfig();
        let answer = block_on(async move {
            let client = client_for(&kubeconfig, None).await?;
            tokio::time::timeout(Duration::from_secs(5), readyz(&client))
                .await
                .unwrap_or(Ok(None))
        });
        matches!(answer, Ok(Ok(Some(()))))
    }
}

/// `Some(())` when the API server reports itself ready.
async fn readyz(client: &Client) -> Result<Option<()>> {
    let request = http::Request::get("/readyz")
        .body(Vec::new())
        .map_err(|error| Error::CommandOutput {
            command: "GET /readyz".into(),
            detail: error.to_string(),
        })?;
    Ok(client
        .request_text(request)
        .await
        .ok()
        .filter(|body| body.trim() == "ok")
        .map(drop))
}

/// A client for `kubeconfig`, optionally impersonating `impersonate`.
pub(crate) async fn client_for(kubeconfig: &Path, impersonate: Option<String>) -> Result<Client> {
    // This crate only ever compiles rustls with ring; be explicit in case the build ever
    // contains a second provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::read_from(kubeconfig)?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.auth_info.impersonate = impersonate;
    Ok(Client::try_from(config)?)
}

async fn start_in(dir: PathBuf, with_node: bool, watched: bool) -> Result<ControlPlane> {
    for sub in ["pids", "logs", "users"] {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path).context(|| format!("creating {}", path.display()))?;
    }
    if watched {
        crate::node_watchdog::start(&dir)?;
    }
    let kubernetes = pins::tool("kubernetes")?;
    let etcd_client = free_port()?;
    let etcd_peer = free_port()?;
    let apiserver_port = free_port()?;
    // Pods cannot reach the host's loopback: with a node, the API server listens on the
    // bridge's address.
    let apiserver_ip = if with_node {
        crate::node::prepare_network(&dir)?;
        IpAddr::V4(crate::node::NODE_IP)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    let info = EnvironmentInfo {
        server: format!("https://{apiserver_ip}:{apiserver_port}"),
        etcd: format!("http://127.0.0.1:{etcd_client}"),
        kubernetes_version: kubernetes.version.clone(),
        started_unix: 0,
        node: with_node.then(|| crate::node::NODE_NAME.to_owned()),
    };

    let pki = pki::generate(&dir.join("pki"), IpAddr::V4(FIRST_SERVICE_IP))?;
    write_kubeconfigs(&dir, &pki, &info.server)?;
    let path = |p: PathBuf| p.to_string_lossy().into_owned();

    let peer = format!("http://127.0.0.1:{etcd_peer}");
    let mut etcd = spawn(
        &dir,
        "etcd",
        &pins::binary("etcd", "etcd")?,
        &[
            "--name=testenv".into(),
            format!("--data-dir={}", path(dir.join("etcd"))),
            format!("--listen-client-urls={}", info.etcd),
            format!("--advertise-client-urls={}", info.etcd),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=testenv={peer}"),
            // Durability is worthless for a throw-away test cluster; fsync dominates its latency.
            "--unsafe-no-fsync".into(),
            "--log-level=warn".into(),
        ],
    )?;
    wait_for(&dir, "etcd", &mut etcd, || async move {
        Ok(tokio::net::TcpStream::connect(("127.0.0.1", etcd_client))
            .await
            .ok()
            .map(drop))
    })
    .await?;

    let pki_path = |file: &str| path(pki.path(file));
    let mut apiserver_args = vec![
        format!("--etcd-servers={}", info.etcd),
        format!("--bind-address={apiserver_ip}"),
        format!("--advertise-address={apiserver_ip}"),
        format!("--secure-port={apiserver_port}"),
        format!("--tls-cert-file={}", pki_path("apiserver.crt")),
        format!("--tls-private-key-file={}", pki_path("apiserver.key")),
        format!("--client-ca-file={}", pki_path("ca.crt")),
        format!("--token-auth-file={}", pki_path("tokens.csv")),
        "--authorization-mode=Node,RBAC".into(),
        // As in real clusters: whether privileged Pods may run is PodSecurity's decision.
        "--allow-privileged=true".into(),
        // Added to the default plugins (which already include PodSecurity in 1.37): named so
        // the environment keeps them whatever the defaults become.
        "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity,NodeRestriction"
            .into(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!(
            "--service-account-key-file={}",
            pki_path("service-accounts.pub")
        ),
        format!(
            "--service-account-signing-key-file={}",
            pki_path("service-accounts.key")
        ),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        format!("--cert-dir={}", path(dir.join("apiserver-certs"))),
        "--profiling=false".into(),
    ];
    if with_node {
        // `kubectl logs`/`exec` go through the kubelet, which trusts the environment's CA.
        apiserver_args.extend([
            format!("--kubelet-client-certificate={}", pki_path("admin.crt")),
            format!("--kubelet-client-key={}", pki_path("admin.key")),
            format!("--kubelet-certificate-authority={}", pki_path("ca.crt")),
            "--kubelet-preferred-address-types=InternalIP".into(),
        ]);
    } else {
        // No kube-apiserver endpoints to publish: nothing in the cluster dials the API.
        apiserver_args.push("--endpoint-reconciler-type=none".into());
    }
    let mut apiserver = spawn(
        &dir,
        "kube-apiserver",
        &pins::binary("kubernetes", "kube-apiserver")?,
        &apiserver_args,
    )?;
    let kubeconfig = dir.join("kubeconfig");
    let client = client_for(&kubeconfig, None).await?;
    wait_for(&dir, "kube-apiserver", &mut apiserver, || {
        let client = client.clone();
        async move { readyz(&client).await }
    })
    .await?;

    let mut controller_manager = spawn(
        &dir,
        "kube-controller-manager",
        &pins::binary("kubernetes", "kube-controller-manager")?,
        &[
            format!(
                "--kubeconfig={}",
                path(dir.join("kube-controller-manager.kubeconfig"))
            ),
            "--controllers=*".into(),
            // Each controller acts as its own ServiceAccount, as in a real cluster, so RBAC
            // applies to them.
            "--use-service-account-credentials=true".into(),
            format!(
                "--service-account-private-key-file={}",
                pki_path("service-accounts.key")
            ),
            format!("--root-ca-file={}", pki_path("ca.crt")),
            format!("--cluster-signing-cert-file={}", pki_path("ca.crt")),
            format!("--cluster-signing-key-file={}", pki_path("ca.key")),
            "--leader-elect=false".into(),
            // It serves only health and metrics, which nothing here reads.
            "--secure-port=0".into(),
        ],
    )?;
    // The ServiceAccount controller creates `default` in every namespace: proof that the
    // controllers run and can write.
    let service_accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), "default");
    wait_for(
        &dir,
        "kube-controller-manager",
        &mut controller_manager,
        || {
            let service_accounts = service_accounts.clone();
            async move { Ok(service_accounts.get_opt("default").await?.map(drop)) }
        },
    )
    .await?;

    if with_node {
        crate::node::start(&dir, &pki, &info.server, &client).await?;
    }

    let info = EnvironmentInfo {
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or_default(),
        ..info
    };
    crate::util::write_atomic(
        &dir.join("environment.json"),
        serde_json::to_vec_pretty(&info)?,
    )?;
    Ok(ControlPlane { dir, info })
}

/// Polls `ready` until it succeeds, failing early (with the log's tail) if the process exits.
pub(crate) async fn wait_for<F, Fut>(
    dir: &Path,
    name: &'static str,
    child: &mut Child,
    ready: F,
) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<()>>>,
{
    let log = log_path(dir, name);
    poll_until(&format!("{name} to become ready"), START_TIMEOUT, || {
        let exited = child.try_wait();
        let probe = ready();
        let log = log.clone();
        async move {
            match exited.context(|| format!("checking on {name}"))? {
                Some(status) => Err(exit_error(name, &status, log)),
                None => probe.await,
            }
        }
    })
    .await
    .map_err(|error| match error {
        Error::Timeout { what, waited } => Error::Timeout {
            what: format!(
                "{what}; last lines of {}:\n{}",
                log.display(),
                tail(&log, 40)
            ),
            waited,
        },
        other => other,
    })
}

/// Why a component exited during start-up: a port someone else holds, or else its log's tail.
fn exit_error(name: &'static str, status: &std::process::ExitStatus, log: PathBuf) -> Error {
    let tail = tail(&log, 40);
    match crate::port_taken::taken_address(&tail) {
        Some(address) => Error::PortTaken {
            component: name,
            holder: crate::port_taken::holder(&address),
            address,
            log,
            tail,
        },
        None => Error::ComponentExited {
            component: name,
            status: status.to_string(),
            log,
            tail,
        },
    }
}

pub(crate) fn spawn(dir: &Path, name: &str, binary: &Path, args: &[String]) -> Result<Child> {
    let mut command = Command::new(binary);
    command.args(args);
    let child = spawn_logged(dir, name, command)?;
    let command = serde_json::to_vec(&(binary, args))?;
    crate::util::write_atomic(&command_path(dir, name), command)?;
    Ok(child)
}

/// Starts `command` as the process `name` of the environment in `dir`: output to
/// `logs/<name>.log`, pid in `pids/<name>.pid`, in its own process group.
pub(crate) fn spawn_logged(dir: &Path, name: &str, mut command: Command) -> Result<Child> {
    let log = log_path(dir, name);
    let out = std::fs::File::create(&log).context(|| format!("creating {}", log.display()))?;
    let err = out
        .try_clone()
        .context(|| format!("opening {}", log.display()))?;
    let child = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Own process group: survives its starter and ignores the terminal's Ctrl-C.
        .process_group(0)
        .spawn()
        .context(|| format!("starting {name} ({})", command.get_program().display()))?;
    write_pid(dir, name, child.id())?;
    Ok(child)
}

/// Where a component's command line is kept, so it can be restarted the same way.
fn command_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("pids").join(format!("{name}.command.json"))
}

pub(crate) fn write_pid(dir: &Path, name: &str, pid: u32) -> Result<()> {
    let path = dir.join("pids").join(format!("{name}.pid"));
    std::fs::write(&path, pid.to_string()).context(|| format!("writing {}", path.display()))
}

pub(crate) fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("logs").join(format!("{name}.log"))
}

fn read_pid(dir: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(dir.join("pids").join(format!("{name}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether the process recorded as `name` in `dir` (a component or the watchdog) runs.
pub(crate) fn process_running(dir: &Path, name: &str) -> bool {
    read_pid(dir, name).is_some_and(|pid| is_ours(pid, dir))
}

/// The process lives (not a zombie) and its command line names `dir`: guards against pid reuse.
fn is_ours(pid: i32, dir: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let zombie = std::fs::read_to_string(proc_dir.join("stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true);
    if zombie {
        return false;
    }
    let needle = dir.to_string_lossy();
    std::fs::read(proc_dir.join("cmdline"))
        .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(needle.as_ref()))
        .unwrap_or(false)
}

/// Stops the watchdog and the components of the environment in `dir` (newest first), then
/// removes the directory.
pub(crate) fn stop_dir(dir: &Path) -> Result<()> {
    stop_everything(dir)?;
    match std::fs::remove_dir_all(dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Like [`stop_dir`], but keeps `<dir>/logs`: the start-up error names a log there.
fn remove_failed_start(dir: &Path) -> Result<()> {
    stop_everything(dir)?;
    let entries = std::fs::read_dir(dir).context(|| format!("reading {}", dir.display()))?;
    for entry in entries.flatten() {
        if entry.file_name() == "logs" {
            continue;
        }
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

fn stop_everything(dir: &Path) -> Result<()> {
    stop_process(dir, WATCHDOG)?;
    stop_process(dir, crate::node_watchdog::NODE_WATCHDOG)?;
    // Before the API server goes: nothing then restarts what the node tears down.
    crate::node::teardown(dir)?;
    for name in COMPONENTS.iter().rev().copied() {
        stop_process(dir, name)?;
    }
    Ok(())
}

/// A component frozen by [`ControlPlane::freeze`]; it runs again when this is dropped.
#[derive(Debug)]
#[must_use = "the component runs again when this is dropped"]
pub struct Frozen {
    pid: Pid,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGCONT);
    }
}

pub(crate) fn stop_process(dir: &Path, name: &str) -> Result<()> {
    let Some(pid) = read_pid(dir, name) else {
        return Ok(());
    };
    if !is_ours(pid, dir) {
        return Ok(());
    }
    let target = Pid::from_raw(pid);
    for (signal, patience) in [
        (Signal::SIGTERM, STOP_TIMEOUT),
        (Signal::SIGKILL, STOP_TIMEOUT),
    ] {
        let _ = kill(target, signal);
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            // Reaps it when this process started it; harmless (ECHILD) otherwise.
            let _ = waitpid(target, Some(WaitPidFlag::WNOHANG));
            if !is_ours(pid, dir) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Err(Error::Timeout {
        what: format!("{name} (pid {pid}) to exit after SIGKILL"),
        waited: STOP_TIMEOUT * 2,
    })
}

pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context(|| "finding a free loopback port".to_owned())?;
    Ok(listener
        .local_addr()
        .context(|| "reading a bound port".to_owned())?
        .port())
}

/// The admin kubeconfig (certificate and token contexts) and kube-controller-manager's.
fn write_kubeconfigs(dir: &Path, pki: &Pki, server: &str) -> Result<()> {
    let file = |name: &str| pki.path(name).to_string_lossy().into_owned();
    let cluster = cluster_entry(pki, server);
    let admin = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [
            {"name": ADMIN_USER, "user": {"client-certificate": file("admin.crt"), "client-key": file("admin.key")}},
            {"name": TOKEN_USER, "user": {"token": pki.token()?}},
        ],
        "contexts": [context_entry("gitops-testenv", ADMIN_USER), context_entry("gitops-testenv-token", TOKEN_USER)],
        "current-context": "gitops-testenv",
    });
    write_yaml(&dir.join("kubeconfig"), &admin)?;
    write_client_kubeconfig(
        &dir.join("kube-controller-manager.kubeconfig"),
        pki,
        server,
        "kube-controller-manager.crt",
        "kube-controller-manager.key",
    )
}

fn cluster_entry(pki: &Pki, server: &str) -> serde_json::Value {
    serde_json::json!({
        "name": "gitops-testenv",
        "cluster": {"server": server, "certificate-authority": pki.path("ca.crt")},
    })
}

fn context_entry(name: &str, user: &str) -> serde_json::Value {
    serde_json::json!({"name": name, "context": {"cluster": "gitops-testenv", "user": user, "namespace": "default"}})
}

/// A kubeconfig that authenticates with one client certificate of the environment's PKI.
pub(crate) fn write_client_kubeconfig(
    path: &Path,
    pki: &Pki,
    server: &str,
    certificate: &str,
    key: &str,
) -> Result<()> {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster_entry(pki, server)],
        "users": [{"name": "client", "user": {
            "client-certificate": pki.path(certificate),
            "client-key": pki.path(key),
        }}],
        "contexts": [context_entry("client", "client")],
        "current-context": "client",
    });
    write_yaml(path, &config)
}

fn write_yaml(path: &Path, value: &serde_json::Value) -> Result<()> {
    let yaml = serde_saphyr::to_string(value).map_err(|error| Error::Yaml {
        path: path.to_owned(),
        message: error.to_string(),
    })?;
    std::fs::write(path, yaml).context(|| format!("writing {}", path.display()))
}
