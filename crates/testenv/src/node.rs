//! A node for the test environment: containerd + runc + the CNI bridge, kubelet, kube-proxy and
//! kube-scheduler, so that Pods really run on this machine.
//!
//! The node owns machine-wide things (a bridge, iptables rules, cgroups, a few sysctls), so one
//! node runs per machine at a time. Everything it creates is recorded in `<dir>/node.json`
//! *before* it is created, and [`teardown`] undoes exactly that: processes by pid (and every
//! process in the node's cgroups), mounts under the environment's directory, the bridge, the
//! iptables chains of Kubernetes and CNI plus the node's own rules, the cgroups, the sysctls.
//!
//! Network: the pod bridge has the address [`NODE_IP`]; kube-apiserver, the kubelet and
//! anything Pods must reach listen there (Pods cannot reach the host's loopback). Pods may not
//! leave the bridge: forwarding from the bridge to any other interface is dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::Api;
use serde::{Deserialize, Serialize};

use crate::control_plane::{SERVICE_CIDR, spawn, stop_process, wait_for};
use crate::error::{Error, IoContext, Result};
use crate::pins;
use crate::pki::Pki;
use crate::ports::free_port;
use crate::util::write_atomic;

/// The node's processes, in start order.
pub const NODE_COMPONENTS: [&str; 4] = ["containerd", "kubelet", "kube-proxy", "kube-scheduler"];

/// The Node object's name.
pub const NODE_NAME: &str = "gitops-testenv-node";

/// Address of the pod bridge on the host: the node's IP, where kube-apiserver listens.
pub const NODE_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 88, 0, 1);
const POD_CIDR: &str = "10.88.0.0/24";
const BRIDGE: &str = "gitopsnode0";
/// Under every cgroup hierarchy: the node's Pods live below it.
const CGROUP_ROOT: &str = "gitops-testenv-node";
/// Marks the iptables rules the node adds itself.
const RULE_COMMENT: &str = "gitops-testenv node";

/// The image of every Pod sandbox, built locally from upstream's pause.c (no registry here).
pub const PAUSE_IMAGE: &str = "gitops-testenv.local/pause:3.10";

/// Sysctls the kubelet (kernel tunables) or the CNI bridge (forwarding) change; put back on
/// teardown.
const SYSCTLS: [&str; 4] = [
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
    "net/ipv4/ip_forward",
];

/// What the node created, recorded before it is created (`<dir>/node.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeRecord {
    bridge: String,
    cgroup_root: String,
    /// sysctl path below /proc/sys → value before the node started.
    sysctls: Vec<(String, String)>,
}

fn record_path(dir: &Path) -> PathBuf {
    dir.join("node.json")
}

/// Paths inside the environment's directory.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn path(&self, sub: &str) -> PathBuf {
        self.dir.join("node").join(sub)
    }
    fn string(&self, sub: &str) -> String {
        self.path(sub).to_string_lossy().into_owned()
    }
    fn containerd_socket(&self) -> PathBuf {
        self.path("containerd/containerd.sock")
    }
}

/// Fails when another node runs on this machine (they would share the bridge, the iptables
/// chains and the cgroups). Call before anything is started.
pub(crate) fn check_machine_is_free() -> Result<()> {
    if Path::new("/sys/class/net").join(BRIDGE).exists() {
        return Err(Error::NodeBusy(format!(
            "the bridge {BRIDGE} exists: another test node runs on this machine \
             (stop it with `cargo xtask testenv down`, or delete the bridge with `ip link del {BRIDGE}`)"
        )));
    }
    Ok(())
}

/// Creates the bridge (so kube-apiserver can listen on [`NODE_IP`] before any Pod exists) and
/// records what teardown must undo.
pub(crate) fn prepare_network(dir: &Path) -> Result<()> {
    let sysctls = SYSCTLS
        .iter()
        .map(|name| {
            let path = Path::new("/proc/sys").join(name);
            std::fs::read_to_string(&path)
                .map(|value| ((*name).to_owned(), value.trim().to_owned()))
                .context(|| format!("reading {}", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let record = NodeRecord {
        bridge: BRIDGE.into(),
        cgroup_root: CGROUP_ROOT.into(),
        sysctls,
    };
    write_atomic(&record_path(dir), serde_json::to_vec_pretty(&record)?)?;

    run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    run(
        "ip",
        &["addr", "add", &format!("{NODE_IP}/24"), "dev", BRIDGE],
    )?;
    run("ip", &["link", "set", BRIDGE, "up"])?;
    // Pods talk to the node and to each other, never beyond this machine.
    iptables(&[
        "-I",
        "FORWARD",
        "-i",
        BRIDGE,
        "!",
        "-o",
        BRIDGE,
        "-m",
        "comment",
        "--comment",
        RULE_COMMENT,
        "-j",
        "DROP",
    ])?;
    Ok(())
}

/// Starts containerd, the kubelet, kube-proxy and kube-scheduler against the running API
/// server at `server` and waits until the Node is Ready.
pub(crate) async fn start(dir: &Path, pki: &Pki, server: &str, client: &Client) -> Result<()> {
    let layout = Layout {
        dir: dir.to_owned(),
    };
    for sub in [
        "containerd",
        "cni/net.d",
        "cni/networks",
        "kubelet",
        "pod-logs",
    ] {
        let path = layout.path(sub);
        std::fs::create_dir_all(&path).context(|| format!("creating {}", path.display()))?;
    }
    for hierarchy in cgroup_hierarchies()? {
        let path = hierarchy.join(CGROUP_ROOT);
        std::fs::create_dir_all(&path).context(|| format!("creating {}", path.display()))?;
    }

    start_containerd(&layout).await?;
    import_image(dir, &crate::tool_images::pause_image()?)?;
    write_node_kubeconfigs(&layout, pki, server)?;
    start_kubelet(&layout, pki, client).await?;
    start_kube_proxy(&layout).await?;
    start_scheduler(&layout).await
}

fn write_cni_config(layout: &Layout) -> Result<()> {
    let config = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "gitops-testenv",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                // No masquerading: nothing beyond the bridge is a destination.
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP.to_string()}]],
                    // Only the Services (the `kubernetes` one leads to the API server) are
                    // routed, via the node: Pods have no default route.
                    "routes": [{"dst": SERVICE_CIDR}],
                    "dataDir": layout.string("cni/networks"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    write_atomic(
        &layout.path("cni/net.d/10-gitops-testenv.conflist"),
        serde_json::to_vec_pretty(&config)?,
    )
}

async fn start_containerd(layout: &Layout) -> Result<()> {
    write_cni_config(layout)?;
    let runc = pins::binary("runc", "runc")?;
    let cni_bin = pins::tool("cni-plugins")?.bin_dir("cni-plugins");
    let config = format!(
        r#"version = 3
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.grpc.v1.cri.streaming"]

[grpc]
  address = "{socket}"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  # The kubelet asks for negative OOM scores (-998 for sandboxes), which needs CAP_SYS_RESOURCE;
  # where that is missing (this machine's sandbox), runc fails. Clamp at containerd's own score.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{cni_conf}"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "{runc}"
      Root = "{runc_root}"
      SystemdCgroup = false

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"#,
        root = layout.string("containerd/root"),
        state = layout.string("containerd/state"),
        socket = layout.containerd_socket().display(),
        cni_bin = cni_bin.display(),
        cni_conf = layout.string("cni/net.d"),
        runc = runc.display(),
        runc_root = layout.string("containerd/runc"),
    );
    let config_path = layout.path("containerd/config.toml");
    write_atomic(&config_path, config)?;
    let containerd = pins::binary("containerd", "containerd")?;
    let mut child = spawn(
        &layout.dir,
        "containerd",
        &containerd,
        &[format!("--config={}", config_path.display())],
    )?;
    let socket = layout.containerd_socket();
    wait_for(&layout.dir, "containerd", &mut child, || {
        let socket = socket.clone();
        async move { Ok(tokio::net::UnixStream::connect(socket).await.ok().map(drop)) }
    })
    .await
}

/// Imports an image archive (OCI or docker tarball) into the node's containerd, where the
/// kubelet finds it (namespace `k8s.io`); Pods use it with `imagePullPolicy: Never` or
/// `IfNotPresent`.
pub(crate) fn import_image(dir: &Path, archive: &Path) -> Result<()> {
    let layout = Layout {
        dir: dir.to_owned(),
    };
    let ctr = pins::binary("containerd", "ctr")?;
    let socket = layout.containerd_socket();
    let output = Command::new(&ctr)
        .args(["--address"])
        .arg(&socket)
        .args([
            "--namespace",
            "k8s.io",
            "images",
            "import",
            "--all-platforms",
        ])
        .arg(archive)
        .stdin(Stdio::null())
        .output()
        .context(|| format!("running {}", ctr.display()))?;
    if !output.status.success() {
        return Err(Error::CommandOutput {
            command: format!("ctr images import {}", archive.display()),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Client certificates of the node's components: (kubeconfig file, certificate name).
const NODE_KUBECONFIGS: [(&str, &str); 3] = [
    ("kubelet.kubeconfig", "kubelet-client"),
    ("kube-proxy.kubeconfig", "kube-proxy"),
    ("kube-scheduler.kubeconfig", "kube-scheduler"),
];

fn write_node_kubeconfigs(layout: &Layout, pki: &Pki, server: &str) -> Result<()> {
    for (file, cert) in NODE_KUBECONFIGS {
        crate::control_plane::write_client_kubeconfig(
            &layout.path(file),
            pki,
            server,
            &format!("{cert}.crt"),
            &format!("{cert}.key"),
        )?;
    }
    Ok(())
}

/// The kubelet's API port, upstream's default as on every real node. Fixed rather than free:
/// another kubelet on this machine (one node per machine) then fails the start naming it.
pub const KUBELET_PORT: u16 = 10250;

async fn start_kubelet(layout: &Layout, pki: &Pki, client: &Client) -> Result<()> {
    let port = KUBELET_PORT;
    let healthz_port = free_port()?;
    let config = serde_json::json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP.to_string(),
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": pki.path("kubelet.crt"),
        "tlsPrivateKeyFile": pki.path("kubelet.key"),
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": false},
            "x509": {"clientCAFile": pki.path("ca.crt")},
        },
        // Only the API server (admin client certificate) talks to it.
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": format!("unix://{}", layout.containerd_socket().display()),
        // No systemd on this machine; a cgroup v1 (hybrid) layout.
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": false,
        "cgroupRoot": format!("/{CGROUP_ROOT}"),
        "failSwapOn": false,
        "podLogsDir": layout.string("pod-logs"),
        "staticPodPath": "",
        "registerNode": true,
        "serializeImagePulls": false,
        // Images are imported, never pulled: never garbage-collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        // A shared developer disk is often fuller than kubelet's defaults allow.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "resolvConf": "/etc/resolv.conf",
    });
    let config_path = layout.path("kubelet/config.yaml");
    write_atomic(&config_path, serde_json::to_vec_pretty(&config)?)?;
    let kubelet = pins::binary("kubernetes", "kubelet")?;
    let mut child = spawn(
        &layout.dir,
        "kubelet",
        &kubelet,
        &[
            format!("--config={}", config_path.display()),
            format!("--kubeconfig={}", layout.string("kubelet.kubeconfig")),
            format!("--root-dir={}", layout.string("kubelet/root")),
            format!("--hostname-override={NODE_NAME}"),
            format!("--node-ip={NODE_IP}"),
        ],
    )?;
    wait_for(&layout.dir, "kubelet", &mut child, || {
        let client = client.clone();
        async move { Ok(is_ready(&client).await?.then_some(())) }
    })
    .await
}

/// Whether the Node reports the condition Ready.
pub(crate) async fn is_ready(client: &Client) -> Result<bool> {
    let nodes: Api<Node> = Api::all(client.clone());
    Ok(nodes.get_opt(NODE_NAME).await?.is_some_and(|node| {
        node.status
            .and_then(|status| status.conditions)
            .unwrap_or_default()
            .iter()
            .any(|condition| condition.type_ == "Ready" && condition.status == "True")
    }))
}

async fn start_kube_proxy(layout: &Layout) -> Result<()> {
    let healthz = free_port()?;
    let metrics = free_port()?;
    let config = serde_json::json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": layout.string("kube-proxy.kubeconfig")},
        "hostnameOverride": NODE_NAME,
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "bindAddress": NODE_IP.to_string(),
        "healthzBindAddress": format!("127.0.0.1:{healthz}"),
        "metricsBindAddress": format!("127.0.0.1:{metrics}"),
        "nodePortAddresses": [format!("{NODE_IP}/32")],
        // Leave the machine's conntrack settings alone (0 = do not change).
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"localhostNodePorts": false},
    });
    let config_path = layout.path("kube-proxy.yaml");
    write_atomic(&config_path, serde_json::to_vec_pretty(&config)?)?;
    let mut child = spawn(
        &layout.dir,
        "kube-proxy",
        &pins::binary("kubernetes", "kube-proxy")?,
        &[format!("--config={}", config_path.display())],
    )?;
    wait_for(&layout.dir, "kube-proxy", &mut child, || async move {
        Ok(tokio::net::TcpStream::connect(("127.0.0.1", healthz))
            .await
            .ok()
            .map(drop))
    })
    .await
}

async fn start_scheduler(layout: &Layout) -> Result<()> {
    let port = free_port()?;
    let kubeconfig = layout.string("kube-scheduler.kubeconfig");
    let mut child = spawn(
        &layout.dir,
        "kube-scheduler",
        &pins::binary("kubernetes", "kube-scheduler")?,
        &[
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", layout.string("kube-scheduler-certs")),
        ],
    )?;
    wait_for(&layout.dir, "kube-scheduler", &mut child, || async move {
        Ok(tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(drop))
    })
    .await
}

/// Undoes everything a node in `dir` created (a no-op without `<dir>/node.json`): its
/// processes and every process in its cgroups, mounts under `dir`, the bridge, iptables
/// chains and rules, cgroups and sysctls. Continues past failures and reports the first.
pub(crate) fn teardown(dir: &Path) -> Result<()> {
    let Ok(text) = std::fs::read(record_path(dir)) else {
        return Ok(());
    };
    let record: NodeRecord = serde_json::from_slice(&text)?;
    let mut first_error = None;
    let mut note = |result: Result<()>| {
        if let Err(error) = result {
            eprintln!("testenv: node teardown: {error}");
            first_error.get_or_insert(error);
        }
    };
    // The kubelet first, so it restarts nothing; containerd after the containers.
    for name in ["kube-scheduler", "kube-proxy", "kubelet"] {
        note(stop_process(dir, name));
    }
    note(kill_cgroup_processes(&record.cgroup_root));
    note(kill_processes_naming(dir));
    note(stop_process(dir, "containerd"));
    note(unmount_below(dir));
    if Path::new("/sys/class/net").join(&record.bridge).exists() {
        note(run("ip", &["link", "del", &record.bridge]));
    }
    note(remove_iptables_rules());
    note(remove_cgroups(&record.cgroup_root));
    for (name, value) in &record.sysctls {
        let path = Path::new("/proc/sys").join(name);
        note(std::fs::write(&path, value).context(|| format!("restoring {}", path.display())));
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Every mounted cgroup v1 hierarchy and the unified one.
fn cgroup_hierarchies() -> Result<Vec<PathBuf>> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")
        .context(|| "reading /proc/self/mounts".to_owned())?;
    Ok(mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (_, target, kind) = (fields.next()?, fields.next()?, fields.next()?);
            matches!(kind, "cgroup" | "cgroup2").then(|| PathBuf::from(target))
        })
        .collect())
}

/// Every cgroup directory below `root` in every hierarchy, deepest first.
fn cgroups_below(root: &str) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    walk(&entry.path(), found);
                }
            }
        }
        found.push(dir.to_owned());
    }
    let mut found = Vec::new();
    for hierarchy in cgroup_hierarchies()? {
        let top = hierarchy.join(root);
        if top.is_dir() {
            walk(&top, &mut found);
        }
    }
    Ok(found)
}

fn kill_cgroup_processes(root: &str) -> Result<()> {
    for cgroup in cgroups_below(root)? {
        let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
        for pid in procs
            .lines()
            .filter_map(|line| line.trim().parse::<i32>().ok())
        {
            kill_now(pid);
        }
    }
    Ok(())
}

/// SIGKILL (the process may be gone already).
fn kill_now(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// containerd and its shims (their command lines name the node's containerd socket).
fn kill_processes_naming(dir: &Path) -> Result<()> {
    let needle = layout_needle(dir);
    let entries = std::fs::read_dir("/proc").context(|| "reading /proc".to_owned())?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            kill_now(pid);
        }
    }
    Ok(())
}

fn layout_needle(dir: &Path) -> String {
    Layout {
        dir: dir.to_owned(),
    }
    .containerd_socket()
    .to_string_lossy()
    .into_owned()
}

/// Lazily unmounts everything mounted below `dir` (Pod volumes, overlay root filesystems,
/// network namespaces, the kubelet's shared bind mount of its root), deepest first. Mounts
/// propagate between shared mounts, so one unmount may remove others: re-read after each.
fn unmount_below(dir: &Path) -> Result<()> {
    let prefix = format!("{}/", dir.display());
    let mounted = || -> Result<Vec<String>> {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .context(|| "reading /proc/self/mountinfo".to_owned())?;
        let mut targets: Vec<String> = mounts
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .map(unescape_mount_path)
            .filter(|target| target.starts_with(&prefix))
            .collect();
        targets.sort_by_key(|target| std::cmp::Reverse(target.len()));
        Ok(targets)
    };
    // Bounded: each round removes at least the deepest mount, or gives up.
    for _ in 0..1000 {
        let Some(deepest) = mounted()?.into_iter().next() else {
            return Ok(());
        };
        let result = run("umount", &["--lazy", &deepest]);
        if result.is_err() && mounted()?.contains(&deepest) {
            return result;
        }
    }
    Err(Error::CommandOutput {
        command: format!("umount --lazy {prefix}…"),
        detail: "mounts keep reappearing".into(),
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn remove_cgroups(root: &str) -> Result<()> {
    for cgroup in cgroups_below(root)? {
        // Empty cgroups go with rmdir (their files are virtual); wait briefly for killed
        // processes to leave.
        let mut attempts = 0;
        while let Err(error) = std::fs::remove_dir(&cgroup) {
            attempts += 1;
            if attempts > 50 {
                return Err(error).context(|| format!("removing cgroup {}", cgroup.display()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Chains whose rules the node's components own.
fn is_node_chain(chain: &str) -> bool {
    chain.starts_with("KUBE-") || chain.starts_with("CNI-")
}

/// The `iptables-restore --noflush` input that removes the node's rules from one table of an
/// `iptables-save` dump: rules jumping to or carrying the node's marks in other chains are
/// deleted, the node's chains flushed and deleted. `None` when there is nothing to remove.
fn removal_script(dump: &str) -> Option<String> {
    let mut table = None;
    let mut deletes = Vec::new();
    let mut chains = Vec::new();
    for line in dump.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = Some(name.to_owned());
        } else if let Some(declaration) = line.strip_prefix(':') {
            let chain = declaration.split(' ').next().unwrap_or_default();
            if is_node_chain(chain) {
                chains.push(chain.to_owned());
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule.split(' ').next().unwrap_or_default();
            let jumps_to_ours = rule
                .split(' ')
                .skip_while(|word| *word != "-j" && *word != "-g")
                .nth(1)
                .is_some_and(is_node_chain);
            if !is_node_chain(chain) && (jumps_to_ours || rule.contains(RULE_COMMENT)) {
                deletes.push(format!("-D {rule}"));
            }
        }
    }
    if deletes.is_empty() && chains.is_empty() {
        return None;
    }
    let mut script = format!("*{}\n", table?);
    for delete in deletes {
        script.push_str(&delete);
        script.push('\n');
    }
    for chain in &chains {
        script.push_str(&format!("-F {chain}\n"));
    }
    for chain in &chains {
        script.push_str(&format!("-X {chain}\n"));
    }
    script.push_str("COMMIT\n");
    Some(script)
}

fn remove_iptables_rules() -> Result<()> {
    for (save, restore) in [
        ("iptables-save", "iptables-restore"),
        ("ip6tables-save", "ip6tables-restore"),
    ] {
        for table in ["filter", "nat", "mangle", "raw"] {
            let dump = capture(save, &["-t", table])?;
            if let Some(script) = removal_script(&dump) {
                run_with_input(restore, &["--noflush"], &script)?;
            }
        }
    }
    Ok(())
}

fn iptables(args: &[&str]) -> Result<()> {
    run("iptables", args)
}

fn capture(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context(|| format!("running {program}"))?;
    if !output.status.success() {
        return Err(Error::CommandOutput {
            command: format!("{program} {}", args.join(" ")),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    capture(program, args).map(drop)
}

fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context(|| format!("running {program}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .context(|| format!("writing to {program}"))?;
    }
    let output = child
        .wait_with_output()
        .context(|| format!("waiting for {program}"))?;
    if !output.status.success() {
        return Err(Error::CommandOutput {
            command: format!("{program} {}", args.join(" ")),
            detail: format!(
                "{}; input:\n{input}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_script_deletes_jumps_flushes_and_deletes_the_nodes_chains_only() {
        let dump = "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n\
                    :POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-X - [0:0]\n\
                    :OTHER - [0:0]\n\
                    -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
                    -A PREROUTING -j OTHER\n\
                    -A KUBE-SERVICES -d 10.0.0.1/32 -j KUBE-SVC-X\nCOMMIT\n";
        assert_eq!(
            removal_script(dump).expect("something to remove"),
            "*nat\n-D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -F KUBE-SERVICES\n-F KUBE-SVC-X\n-X KUBE-SERVICES\n-X KUBE-SVC-X\nCOMMIT\n"
        );
    }

    #[test]
    fn removal_script_removes_the_nodes_own_rules_by_comment() {
        let dump = format!(
            "*filter\n:FORWARD ACCEPT [0:0]\n\
             -A FORWARD -i {BRIDGE} ! -o {BRIDGE} -m comment --comment \"{RULE_COMMENT}\" -j DROP\nCOMMIT\n"
        );
        assert_eq!(
            removal_script(&dump).expect("something to remove"),
            format!(
                "*filter\n-D FORWARD -i {BRIDGE} ! -o {BRIDGE} -m comment --comment \"{RULE_COMMENT}\" -j DROP\nCOMMIT\n"
            )
        );
    }

    #[test]
    fn removal_script_leaves_tables_without_node_rules_alone() {
        assert_eq!(
            removal_script("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n"),
            None
        );
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/tmp/a\\040b"), "/tmp/a b");
    }
}
