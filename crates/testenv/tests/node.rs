//! The environment's node: Pods really run (restricted securityContext, pod network on the
//! bridge), a second node is refused with a clear error, and stopping leaves nothing behind.
//! One test function: one node runs per machine.

use std::time::Duration;

use gitops_testenv::{ControlPlane, NODE_IP, PAUSE_IMAGE, TestEnv, poll_until};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

const POD_START: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn pods_run_on_the_node_and_stopping_leaves_nothing_behind() {
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
        assert_nothing_left(&plane);
    }
}

fn shared_dir() -> Option<std::path::PathBuf> {
    gitops_testenv::shared::shared_environment()
        .ok()
        .flatten()
        .map(|plane| plane.dir().to_owned())
}

/// No process, mount, interface, iptables chain or cgroup of the node remains.
fn assert_nothing_left(plane: &ControlPlane) {
    assert!(!plane.dir().exists(), "{} removed", plane.dir().display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let needle = plane.dir().to_string_lossy().into_owned();
    assert!(
        !mounts.contains(&needle),
        "mounts left under {needle}:\n{mounts}"
    );
    assert!(
        !std::path::Path::new("/sys/class/net/gitopsnode0").exists(),
        "bridge left"
    );
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
