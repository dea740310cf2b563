//! Runs the real `kubectl-gitops` binary against the shared API server and an in-process
//! authentik double; the real `gitops-service-discovery` binary (scoped to the test's
//! namespace) makes ProxyConfigs converge.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::io::Write;

use base64::Engine;
use gitops_harness::{Harness, workspace_binary};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// The release name the tests install "as" (objects named like the chart names them).
pub const RELEASE: &str = "glm";

pub async fn harness(purpose: &str) -> Harness {
    Harness::new(purpose, workspace_binary("gitops-service-discovery")).await
}

/// One finished run of the CLI.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {self:#?}"))
    }

    /// Asserts the exit code, showing everything the CLI said when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }

    /// Asserts the CLI failed with exactly one line on stderr containing `text`.
    pub fn expect_one_line_error(&self, text: &str) {
        self.expect_code(2);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected: {self:#?}");
        assert!(lines[0].starts_with("kubectl-gitops: "), "{self:#?}");
        assert!(lines[0].contains(text), "{text:?} expected: {self:#?}");
        assert!(!self.stderr.contains("backtrace"), "{self:#?}");
    }
}

/// Runs the binary with exactly `env` (plus PATH) and `args`.
pub async fn run(args: &[&str], env: &[(&str, String)]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-gitops"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_BACKTRACE", "1")
        .args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().await.expect("kubectl-gitops runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the binary against the harness's cluster, namespace and authentik; the release
/// is `glm` in the test namespace.
pub async fn cli(h: &Harness, args: &[&str]) -> Run {
    let mut all = vec![
        "-n",
        h.namespace(),
        "--release",
        RELEASE,
        "--release-namespace",
        h.namespace(),
    ];
    all.extend_from_slice(args);
    run(&all, &env(h)).await
}

pub fn env(h: &Harness) -> Vec<(&'static str, String)> {
    vec![
        ("KUBECONFIG", h.env.kubeconfig().display().to_string()),
        ("AUTHENTIK_HOST", h.authentik.base_url()),
        ("AUTHENTIK_TOKEN", h.authentik.token().to_owned()),
    ]
}

/// A Helm v3 release Secret as `helm install` writes it.
pub async fn install_release_secret(h: &Harness, status: &str, values: Value) {
    let document = json!({
        "name": RELEASE, "namespace": h.namespace(), "version": 1,
        "info": {"status": status},
        "chart": {"metadata": {"name": "gitops-lifecycle-management", "version": "0.1.0"}},
        "config": values
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(document.to_string().as_bytes()).expect("gzip");
    let stored = base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip"));
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("sh.helm.release.v1.{RELEASE}.v1")),
            labels: Some(BTreeMap::from([
                ("owner".to_owned(), "helm".to_owned()),
                ("name".to_owned(), RELEASE.to_owned()),
                ("status".to_owned(), status.to_owned()),
                ("version".to_owned(), "1".to_owned()),
            ])),
            ..Default::default()
        },
        type_: Some("helm.sh/release.v1".into()),
        data: Some(BTreeMap::from([(
            "release".to_owned(),
            ByteString(stored.into_bytes()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(h.client.clone(), h.namespace())
        .create(&PostParams::default(), &secret)
        .await
        .expect("release Secret created");
}

/// A controller Deployment as the chart names it, with `desired` replicas. kube-controller-
/// manager creates its Pods, which stay Pending (no kubelet); [`set_ready_pods`] plays kubelet.
pub async fn install_deployment(h: &Harness, controller: &str, desired: i32) {
    install_deployment_with_env(h, controller, desired, json!([])).await;
}

/// Like [`install_deployment`], its container with environment `env` (a list of EnvVars).
pub async fn install_deployment_with_env(h: &Harness, controller: &str, desired: i32, env: Value) {
    let name = format!("{RELEASE}-{controller}");
    let manifest = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": desired,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "controller", "image": "example.invalid/controller", "env": env}]}
            }
        }
    });
    Api::<Deployment>::namespaced(h.client.clone(), h.namespace())
        .patch(
            &name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&manifest),
        )
        .await
        .expect("deployment applied");
}

/// Marks `ready` of the Deployment's Pods Ready (the rest not) and waits until the Deployment
/// reports that many ready replicas.
pub async fn set_ready_pods(h: &Harness, controller: &str, ready: usize, desired: usize) {
    let name = format!("{RELEASE}-{controller}");
    let pods: Api<Pod> = Api::namespaced(h.client.clone(), h.namespace());
    let list = h
        .wait_until(&format!("{desired} Pods of {name}"), || async {
            let list = pods
                .list(&ListParams::default().labels(&format!("app={name}")))
                .await
                .ok()?;
            (list.items.len() == desired).then_some(list.items)
        })
        .await;
    for (index, pod) in list.iter().enumerate() {
        let status = if index < ready { "True" } else { "False" };
        pods.patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": status}, {"type": "ContainersReady", "status": status}
            ]}})),
        )
        .await
        .expect("pod status");
    }
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), h.namespace());
    h.wait_until(&format!("{name} to report {ready} ready"), || async {
        let deployment = deployments.get(&name).await.ok()?;
        let status = deployment.status?;
        (status.ready_replicas.unwrap_or(0) == i32::try_from(ready).ok()?).then_some(())
    })
    .await;
}
