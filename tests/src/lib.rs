//! Support for the end-to-end checks of the Helm chart, the alert rules, the dashboard and the
//! deploy manifests: paths, the pinned tools (helm, kubectl, promtool), rendering the chart, and
//! the two parsers the metric-name check needs (metric names in PromQL, metric names the
//! controllers' sources declare).
//!
//! Test-only: nothing in the product depends on this crate.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

pub mod promql;
pub mod sources;
pub mod values_doc;

/// Release name the operators' runbook assumes.
pub const RELEASE: &str = "gitops-lifecycle-management";

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository root")
        .to_path_buf()
}

/// `charts/gitops-lifecycle-management`.
pub fn chart_dir() -> PathBuf {
    workspace_root().join("charts/gitops-lifecycle-management")
}

/// The all-features values file.
pub fn all_features_values() -> PathBuf {
    chart_dir().join("ci/all-features-values.yaml")
}

/// A pinned tool's binary, built first if needed (`tool` is the `[tools.*]` key).
pub fn tool(tool: &str, binary: &str) -> PathBuf {
    gitops_testenv::ensure_tools(&[tool]).unwrap_or_else(|e| panic!("building {tool}: {e}"));
    gitops_testenv::pins::binary(tool, binary).expect("pinned binary")
}

/// The Kubernetes version the test environment runs, which offline rendering and linting name
/// explicitly (helm's default is the version of its client-go; see
/// `helm_template_and_lint_work_as_users_type_them` for the command without it).
pub fn kube_version() -> String {
    gitops_testenv::pins::tool("kubernetes")
        .expect("kubernetes pinned")
        .version
        .clone()
}

/// What a command printed and whether it succeeded.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with everything the command printed unless it succeeded.
    pub fn ok(self, what: &str) -> Self {
        assert!(
            self.success,
            "{what} failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `program` with `args` (and `stdin`), with KUBECONFIG set when given. Helm keeps its
/// caches and configuration in a directory of its own, not the user's.
pub fn run(
    program: &Path,
    args: &[&str],
    kubeconfig: Option<&Path>,
    stdin: Option<&str>,
) -> Output {
    let helm_home = std::env::temp_dir().join("gitops-e2e-helm-home");
    let mut command = Command::new(program);
    command
        .args(args)
        .env("HELM_CACHE_HOME", helm_home.join("cache"))
        .env("HELM_CONFIG_HOME", helm_home.join("config"))
        .env("HELM_DATA_HOME", helm_home.join("data"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match kubeconfig {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env_remove("KUBECONFIG"),
    };
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("writing stdin");
    }
    let output = child.wait_with_output().expect("waiting for the command");
    Output {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `helm <args>`.
pub fn helm(args: &[&str], kubeconfig: Option<&Path>) -> Output {
    run(&tool("helm", "helm"), args, kubeconfig, None)
}

/// `kubectl <args>` against `kubeconfig`, with optional stdin.
pub fn kubectl(args: &[&str], kubeconfig: &Path, stdin: Option<&str>) -> Output {
    run(
        &tool("kubernetes", "kubectl"),
        args,
        Some(kubeconfig),
        stdin,
    )
}

/// `helm template` of the chart: release `release` in `namespace`, with values files and
/// `--set` pairs. Returns helm's output (an error carries helm's message).
pub fn template(release: &str, namespace: &str, values: &[&Path], sets: &[&str]) -> Output {
    let chart = chart_dir();
    let kube_version = kube_version();
    let mut args = vec![
        "template",
        release,
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        namespace,
        "--kube-version",
        kube_version.as_str(),
    ];
    let values: Vec<String> = values.iter().map(|p| p.display().to_string()).collect();
    for file in &values {
        args.extend(["--values", file.as_str()]);
    }
    for set in sets {
        args.extend(["--set", set]);
    }
    helm(&args, None)
}

/// Rendered objects of the chart (panics if rendering fails).
pub fn render(release: &str, namespace: &str, values: &[&Path], sets: &[&str]) -> Vec<Value> {
    let output = template(release, namespace, values, sets).ok("helm template");
    documents(&output.stdout)
}

/// The non-empty documents of a multi-document YAML text.
pub fn documents(text: &str) -> Vec<Value> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("YAML: {e}\n{text}"));
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

/// `kind/name` of an object.
pub fn key(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// The rendered objects of `kind`, by name.
pub fn of_kind<'a>(objects: &'a [Value], kind: &str) -> BTreeMap<String, &'a Value> {
    objects
        .iter()
        .filter(|o| o["kind"] == kind)
        .map(|o| {
            (
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                o,
            )
        })
        .collect()
}

/// Writes `objects` as one YAML stream (JSON documents are YAML).
pub fn to_yaml_stream(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| serde_json::to_string(o).expect("serializable"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// A copy of the admin kubeconfig whose users act as `user` (kube clients and kubectl honour
/// `as:` by sending impersonation headers), so a controller binary runs with exactly the rights
/// RBAC grants that user.
pub fn impersonating_kubeconfig(admin: &Path, user: &str, out: &Path) {
    let text = std::fs::read_to_string(admin).expect("reading the admin kubeconfig");
    let mut config: Value = serde_saphyr::from_str(&text).expect("kubeconfig YAML");
    for entry in config["users"].as_array_mut().expect("users") {
        entry["user"]["as"] = Value::String(user.to_owned());
    }
    std::fs::write(out, serde_json::to_string_pretty(&config).expect("json"))
        .expect("writing kubeconfig");
}

/// A controller binary of this workspace, built by `cargo build`/`cargo test --workspace`
/// into the same target directory as this test.
pub fn controller_binary(name: &str) -> PathBuf {
    // target/<profile>/deps/<test-binary> → target/<profile>/<name>
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build -p {}` (cargo xtask test builds the whole workspace first)",
        path.display(),
        if name == "gitops-cleanup" {
            "gitops-cleanup"
        } else {
            "gitops-service-discovery"
        }
    );
    path
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Names appearing in `objects` of `kind`.
pub fn names_of_kind(objects: &[Value], kind: &str) -> BTreeSet<String> {
    of_kind(objects, kind).into_keys().collect()
}

/// Installs the product's CRDs and the third-party ones the chart's objects use
/// (PrometheusRule, ServiceMonitor, ExternalSecret, HelmRelease, …).
pub async fn install_all_crds(client: &kube::Client) {
    gitops_testenv::install_product_crds(client)
        .await
        .expect("product CRDs");
    gitops_testenv::install_third_party_crds(client)
        .await
        .expect("third-party CRDs");
}
