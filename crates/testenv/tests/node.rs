//! The environment's node: Pods really run (restricted securityContext, pod network on the
//! bridge), a second node is refused with a clear error, stopping leaves nothing behind, and
//! a node that cannot start says why and leaves nothing behind either.
//! One node runs per machine: the tests take turns ([`ONE_NODE`]).

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gitops_testenv::{
    ControlPlane, Error, KUBELET_PORT, NODE_IP, PAUSE_IMAGE, TestEnv, poll_until,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

const POD_START: Duration = Duration::from_secs(120);

/// Held by each test while it may start a node.
static ONE_NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

gitops_testenv::node_watchdog!();

#[tokio::test(flavor = "multi_thread")]
async fn pods_run_on_the_node_and_stopping_leaves_nothing_behind() {
    let _turn = ONE_NODE.lock().await;
    let env = TestEnv::with_node().expect("an environment with a node");
    let plane = env.control_plane().clone();
    assert!(plane.is_node_ready(), "node Ready");
    assert!(
        plane.processes().iter().all(|process| process.running),
        "{:?}",
        plane.processes()
    );

    let (client, ns) = env.prepare("node").await.expect("namespace");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "sandbox"},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "pause",
                "image": PAUSE_IMAGE,
                "imagePullPolicy": "Never",
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
            }],
        },
    }))
    .expect("pod manifest");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let running = poll_until("the Pod to run", POD_START, || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("sandbox").await?;
            let status = pod.status.unwrap_or_default();
            Ok((status.phase.as_deref() == Some("Running")).then_some(status))
        }
    })
    .await
    .unwrap_or_else(|error| panic!("{error}; node logs in {}/logs", plane.dir().display()));
    let pod_ip = running.pod_ip.expect("a pod IP");
    assert!(
        pod_ip.starts_with("10.88.0.") && pod_ip != NODE_IP.to_string(),
        "{pod_ip}"
    );

    let archives = tempfile::tempdir().expect("a directory for archives");
    let missing = archives.path().join("missing.tar");
    let error = plane
        .import_image(&missing)
        .expect_err("a missing archive")
        .to_string();
    assert_eq!(
        error,
        format!(
            "image archive {}: missing; build the images with `cargo xtask image`",
            missing.display()
        )
    );
    let corrupt = archives.path().join("corrupt.tar");
    std::fs::write(&corrupt, "not a tar archive\n").expect("corrupt archive written");
    let error = plane
        .import_image(&corrupt)
        .expect_err("a corrupt archive")
        .to_string();
    assert!(
        error.starts_with(&format!(
            "image archive {}: not an OCI image archive (",
            corrupt.display()
        )) && !error.contains('\n'),
        "{error}"
    );

    let second = ControlPlane::start_with_node().expect_err("a second node on one machine");
    assert!(
        second
            .to_string()
            .contains("another test node runs on this machine"),
        "{second}"
    );

    // An environment kept up with `testenv up --node` stays; one started here must go.
    let owned = shared_dir().as_deref() != Some(plane.dir());
    drop(ns);
    drop(env);
    if owned {
        assert!(!plane.dir().exists(), "{} removed", plane.dir().display());
        assert_nothing_left(plane.dir());
    }
}

/// A port the kubelet needs is taken (here by this test; on a real machine, say, by another
/// kubelet): the start fails with one line naming the kubelet, the address and the holder, then
/// the kubelet's log; everything started before it (etcd, the API server, containerd, the
/// bridge, cgroups, mounts, the node watchdog) is gone again, only the logs are kept.
#[tokio::test(flavor = "multi_thread")]
async fn a_taken_kubelet_port_fails_the_start_naming_it_and_leaves_nothing_behind() {
    let _turn = ONE_NODE.lock().await;
    if let Some(dir) = shared_dir_with_node() {
        eprintln!(
            "skipped: the shared environment in {} has a node, so no other can start",
            dir.display()
        );
        return;
    }
    // Any listener on the port blocks the kubelet's bind on the node's address.
    let taken = TcpListener::bind((Ipv4Addr::UNSPECIFIED, KUBELET_PORT))
        .unwrap_or_else(|error| panic!("port {KUBELET_PORT} must be free for this test: {error}"));

    let error = tokio::task::spawn_blocking(TestEnv::with_node)
        .await
        .expect("start thread")
        .expect_err("the kubelet cannot listen");
    drop(taken);

    let message = error.to_string();
    let first_line = message.lines().next().unwrap_or_default();
    assert!(
        first_line.starts_with(&format!(
            "kubelet cannot start: {NODE_IP}:{KUBELET_PORT} is already taken by pid {} (",
            std::process::id()
        )),
        "{message}"
    );
    assert!(
        message.contains("bind: address already in use"),
        "the kubelet's log tail follows: {message}"
    );
    let Error::PortTaken { log, .. } = &error else {
        panic!("a PortTaken error: {error:?}");
    };
    let dir = log
        .parent()
        .and_then(Path::parent)
        .expect("logs live in <environment>/logs");
    let kept: Vec<_> = std::fs::read_dir(dir)
        .expect("the failed start's directory with its logs")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(
        kept,
        ["logs"],
        "only the logs of {} are kept",
        dir.display()
    );
    assert_nothing_left(dir);
    std::fs::remove_dir_all(dir).expect("logs removed");
}

/// Set for the helper process of [`a_killed_test_process_leaves_no_node_behind`].
const KILL_HELPER_VARIABLE: &str = "GITOPS_TESTENV_TEST_KILL_HELPER";

/// A test process that starts a node and waits to be killed; does nothing unless
/// [`a_killed_test_process_leaves_no_node_behind`] runs it.
#[test]
#[ignore = "a helper process of a_killed_test_process_leaves_no_node_behind"]
fn start_a_node_and_wait_to_be_killed() {
    if std::env::var_os(KILL_HELPER_VARIABLE).is_none() {
        return;
    }
    let env = TestEnv::with_node().expect("an environment with a node");
    println!("\nnode in {}", env.control_plane().dir().display());
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// SIGKILL gives a test process no chance to stop its node: the node's watchdog does, and
/// nothing of it is left.
#[test]
fn a_killed_test_process_leaves_no_node_behind() {
    let _turn = ONE_NODE.blocking_lock();
    if let Some(dir) = shared_dir_with_node() {
        eprintln!(
            "skipped: the shared environment in {} has a node, so no other can start",
            dir.display()
        );
        return;
    }
    let mut helper = Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "--ignored",
            "--nocapture",
            "start_a_node_and_wait_to_be_killed",
        ])
        .env(KILL_HELPER_VARIABLE, "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("helper process");
    let stdout = BufReader::new(helper.stdout.take().expect("helper's stdout"));
    let dir = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("node in ").map(PathBuf::from));
    helper.kill().expect("SIGKILL the helper");
    helper.wait().expect("helper reaped");
    let dir = dir.expect("the helper started a node");

    let deadline = Instant::now() + Duration::from_secs(120);
    while (dir.exists() || bridge_exists() || !processes_naming(&dir).is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        !dir.exists(),
        "{} still there two minutes after its owner was killed",
        dir.display()
    );
    assert_nothing_left(&dir);
}

fn bridge_exists() -> bool {
    Path::new("/sys/class/net/gitopsnode0").exists()
}

/// Command lines of the processes that name `dir`.
fn processes_naming(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|entry| {
            let cmdline = std::fs::read(entry.ok()?.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(&needle).then_some(cmdline)
        })
        .collect()
}

fn shared_dir_with_node() -> Option<std::path::PathBuf> {
    gitops_testenv::shared::shared_environment()
        .ok()
        .flatten()
        .filter(ControlPlane::has_node)
        .map(|plane| plane.dir().to_owned())
}

fn shared_dir() -> Option<std::path::PathBuf> {
    gitops_testenv::shared::shared_environment()
        .ok()
        .flatten()
        .map(|plane| plane.dir().to_owned())
}

/// No process, mount, interface, iptables chain or cgroup of the environment in `dir` remains.
fn assert_nothing_left(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let processes = processes_naming(dir);
    assert!(processes.is_empty(), "processes left: {processes:#?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&needle),
        "mounts left under {needle}:\n{mounts}"
    );
    assert!(!bridge_exists(), "bridge left");
    let rules = std::process::Command::new("iptables-save")
        .output()
        .expect("iptables-save");
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(
        !rules.contains("KUBE-") && !rules.contains("CNI-") && !rules.contains("gitops-testenv"),
        "iptables rules left:\n{rules}"
    );
    assert!(
        !std::path::Path::new("/sys/fs/cgroup/memory/gitops-testenv-node").exists(),
        "cgroups left"
    );
}
