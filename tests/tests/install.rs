//! The chart installed into the real test API server (RBAC + PodSecurity admission,
//! kube-controller-manager creating the Deployments' Pods): every object accepted, Pods
//! admitted under Pod Security "restricted", the runbook's names present, the Flux manifests
//! accepted by the Flux CRDs.
//!
//! CRDs: every test first installs the product CRDs (as other tests of the run do) and the
//! pinned third-party CRDs, so they exist before Helm runs. Helm would refuse to adopt a CRD it
//! did not create, so releases install with `crds.install=false`; the CRD templates themselves
//! are proven by a server-side dry-run apply of the full rendering (`crds.install=true`), which
//! the API server validates like a real apply without persisting it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gitops_e2e::{
    RELEASE, all_features_values, chart_dir, helm, key, kubectl, template, to_yaml_stream,
    workspace_root,
};
use gitops_testenv::{TestEnv, TestNamespace, poll_until};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

struct Setup {
    env: &'static TestEnv,
    client: kube::Client,
    kubeconfig: PathBuf,
}

async fn setup() -> Setup {
    gitops_runtime::install_crypto_provider();
    let env = TestEnv::shared().expect("test environment");
    let client = env.client().await.expect("client");
    gitops_e2e::install_all_crds(&client).await;
    Setup {
        env,
        client,
        kubeconfig: env.kubeconfig(),
    }
}

/// A fresh namespace enforcing Pod Security "restricted".
async fn restricted_namespace(setup: &Setup, purpose: &str) -> TestNamespace {
    let ns = setup.env.namespace(purpose).await.expect("namespace");
    let labels = json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }}});
    Api::<Namespace>::all(setup.client.clone())
        .patch(ns.name(), &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .expect("label namespace");
    ns
}

/// Uninstalls the release when the test ends (cluster-scoped RBAC outlives the namespace).
struct Release {
    name: String,
    namespace: String,
    kubeconfig: PathBuf,
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = helm(
            &[
                "uninstall",
                &self.name,
                "--namespace",
                &self.namespace,
                "--wait=false",
            ],
            Some(&self.kubeconfig),
        );
    }
}

fn install(setup: &Setup, release: &str, namespace: &str, values: &[&Path]) -> Release {
    let chart = chart_dir();
    let mut args = vec![
        "install",
        release,
        chart.to_str().expect("utf-8"),
        "--namespace",
        namespace,
        "--set",
        "crds.install=false",
    ];
    let values: Vec<String> = values.iter().map(|p| p.display().to_string()).collect();
    for file in &values {
        args.extend(["--values", file.as_str()]);
    }
    let guard = Release {
        name: release.to_owned(),
        namespace: namespace.to_owned(),
        kubeconfig: setup.kubeconfig.clone(),
    };
    helm(&args, Some(&setup.kubeconfig)).ok("helm install");
    guard
}

/// Server-side dry-run apply of every rendered object (CRDs included): the API server checks
/// schemas, the third-party CRDs and admission (Pod Security for the test Pod) without
/// persisting anything.
fn dry_run_apply_everything(setup: &Setup, release: &str, namespace: &str, values: &[&Path]) {
    let output = template(release, namespace, values, &["crds.install=true"]).ok("helm template");
    let objects = gitops_e2e::documents(&output.stdout);
    let stream = to_yaml_stream(&objects);
    let applied = kubectl(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--force-conflicts",
            "--field-manager=gitops-e2e",
            "-f",
            "-",
        ],
        &setup.kubeconfig,
        Some(&stream),
    )
    .ok("server-side dry-run apply of the rendered chart");
    for object in &objects {
        let kind = object["kind"].as_str().expect("kind").to_ascii_lowercase();
        let name = object["metadata"]["name"].as_str().expect("name");
        let reported = applied.stdout.lines().any(|line| {
            let Some((resource, rest)) = line.split_once('/') else {
                return false;
            };
            resource.split('.').next() == Some(kind.as_str())
                && rest.split_whitespace().next() == Some(name)
        });
        assert!(
            reported,
            "{} not reported applied:\n{}",
            key(object),
            applied.stdout
        );
    }
}

/// Waits until every Deployment of the release has all its Pods created: the ReplicaSet
/// controller's Pod creations passed admission (Pod Security "restricted" included). Without
/// a scheduler they stay Pending, which is fine here.
async fn pods_admitted(
    setup: &Setup,
    release: &str,
    namespace: &str,
    expected: &BTreeMap<&str, usize>,
) {
    let pods: Api<Pod> = Api::namespaced(setup.client.clone(), namespace);
    for (component, replicas) in expected {
        let selector =
            format!("app.kubernetes.io/instance={release},app.kubernetes.io/component={component}");
        let found = poll_until(
            &format!("{replicas} {component} Pods"),
            Duration::from_secs(60),
            || {
                let pods = pods.clone();
                let selector = selector.clone();
                async move {
                    let list = pods.list(&ListParams::default().labels(&selector)).await?;
                    Ok((list.items.len() >= *replicas).then_some(list.items))
                }
            },
        )
        .await;
        if let Err(error) = found {
            let events = kubectl(
                &[
                    "get",
                    "events",
                    "-n",
                    namespace,
                    "--field-selector",
                    "reason=FailedCreate",
                    "-o",
                    "custom-columns=OBJ:.involvedObject.name,MSG:.message",
                ],
                &setup.kubeconfig,
                None,
            );
            panic!("{error}\nFailedCreate events:\n{}", events.stdout);
        }
    }
    let failed = kubectl(
        &[
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            "reason=FailedCreate",
            "-o",
            "name",
        ],
        &setup.kubeconfig,
        None,
    )
    .ok("events");
    assert!(
        failed.stdout.trim().is_empty(),
        "Pod creations were refused: {}",
        failed.stdout
    );
}

/// The namespace really enforces "restricted": a Pod without the security settings is refused
/// (so the admission of the chart's Pods means something).
fn restricted_is_enforced(setup: &Setup, namespace: &str) {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged", "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let output = kubectl(
        &["create", "--dry-run=server", "-f", "-"],
        &setup.kubeconfig,
        Some(&pod.to_string()),
    );
    assert!(
        !output.success && output.stderr.contains("violates PodSecurity \"restricted"),
        "{}",
        output.combined()
    );
}

#[tokio::test]
async fn defaults_install_and_every_pod_is_admitted_under_restricted() {
    let setup = setup().await;
    let ns = restricted_namespace(&setup, "chart-defaults").await;
    restricted_is_enforced(&setup, ns.name());
    let release = ns.name().to_owned(); // unique: cluster-scoped names never collide
    dry_run_apply_everything(&setup, &release, ns.name(), &[]);
    let _release = install(&setup, &release, ns.name(), &[]);
    pods_admitted(
        &setup,
        &release,
        ns.name(),
        &BTreeMap::from([
            ("service-discovery-controller", 1),
            ("cleanup-controller", 1),
        ]),
    )
    .await;
    // The helm test Pod passes admission in the same namespace.
    let objects = gitops_e2e::render(&release, ns.name(), &[], &[]);
    let test_pod = objects
        .iter()
        .find(|o| o["metadata"]["annotations"].get("helm.sh/hook").is_some())
        .expect("test Pod");
    kubectl(
        &["create", "--dry-run=server", "-f", "-"],
        &setup.kubeconfig,
        Some(&test_pod.to_string()),
    )
    .ok("test Pod admitted");
}

/// Installed as release gitops-lifecycle-management with every feature on (the test namespace
/// stands in for flux-system), every command of the original runbook finds what it looks for.
#[tokio::test]
async fn all_features_install_meets_the_runbook_naming_contract() {
    let setup = setup().await;
    let ns = restricted_namespace(&setup, "flux-system").await;
    let n = ns.name().to_owned();
    // Cluster-scoped leftovers of an earlier, interrupted run of this test would block Helm.
    kubectl(
        &[
            "delete",
            "clusterrole,clusterrolebinding",
            "-l",
            &format!("app.kubernetes.io/instance={RELEASE}"),
            "--ignore-not-found",
        ],
        &setup.kubeconfig,
        None,
    )
    .ok("cleanup");
    let all = all_features_values();
    dry_run_apply_everything(&setup, RELEASE, &n, &[&all]);
    let _release = install(&setup, RELEASE, &n, &[&all]);
    pods_admitted(
        &setup,
        RELEASE,
        &n,
        &BTreeMap::from([
            ("service-discovery-controller", 2),
            ("cleanup-controller", 2),
        ]),
    )
    .await;

    let kc = setup.kubeconfig.clone();
    let run = |args: &[&str]| kubectl(args, &kc, None).ok(&args.join(" "));
    // Daily health check.
    for deployment in [
        "gitops-lifecycle-management-service-discovery",
        "gitops-lifecycle-management-cleanup",
    ] {
        run(&["get", "deployment", deployment, "-n", &n]);
        let replicas = run(&[
            "get",
            "deployment",
            deployment,
            "-n",
            &n,
            "-o",
            "jsonpath={.spec.replicas}",
        ]);
        assert_eq!(replicas.stdout.trim(), "2");
        let container = run(&[
            "get",
            "deployment",
            deployment,
            "-n",
            &n,
            "-o",
            "jsonpath={.spec.template.spec.containers[*].name}",
        ]);
        assert_eq!(container.stdout.trim(), "controller");
        let yaml = run(&["get", "deployment", deployment, "-n", &n, "-o", "yaml"]);
        assert!(yaml.stdout.contains("securityContext"));
    }
    let pods = run(&[
        "get",
        "pods",
        "-n",
        &n,
        "-l",
        "app.kubernetes.io/name=gitops-lifecycle-management",
        "-o",
        "name",
    ]);
    assert_eq!(pods.stdout.lines().count(), 4, "{}", pods.stdout);
    for component in ["service-discovery-controller", "cleanup-controller"] {
        let pods = run(&[
            "get",
            "pods",
            "-n",
            &n,
            "-l",
            &format!("app.kubernetes.io/component={component}"),
            "-o",
            "name",
        ]);
        assert_eq!(
            pods.stdout.lines().count(),
            2,
            "{component}: {}",
            pods.stdout
        );
    }
    let pcs = run(&["get", "proxyconfigs", "--all-namespaces", "-o", "json"]);
    assert!(serde_json::from_str::<Value>(&pcs.stdout).is_ok());
    // Weekly and backup procedures.
    helm(&["get", "values", RELEASE, "-n", &n], Some(&kc)).ok("helm get values");
    let crd = run(&["get", "crd", "proxyconfigs.gitops.io", "-o", "json"]);
    let crd: Value = serde_json::from_str(&crd.stdout).expect("CRD JSON");
    let phase = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        ["phase"];
    assert!(phase.is_object(), "the CRD has .status.phase");
    run(&[
        "get",
        "prometheusrule",
        "gitops-lifecycle-management-alerts",
        "-n",
        &n,
        "-o",
        "yaml",
    ]);
    // Security review.
    run(&["describe", "clusterrole", "gitops-lifecycle-management"]);
    run(&[
        "describe",
        "clusterrolebinding",
        "gitops-lifecycle-management",
    ]);
    let secrets = run(&[
        "get",
        "externalsecrets",
        "-n",
        &n,
        "-l",
        "app.kubernetes.io/name=gitops-lifecycle-management",
        "-o",
        "name",
    ]);
    assert_eq!(secrets.stdout.lines().count(), 2, "{}", secrets.stdout);
    // Metrics Services behind up{job="gitops-lifecycle-management-…-metrics"}.
    run(&[
        "get",
        "service",
        "gitops-lifecycle-management-service-discovery-metrics",
        "gitops-lifecycle-management-cleanup-metrics",
        "-n",
        &n,
    ]);
    // Performance procedure: raise limits of the container named controller; restart.
    run(&[
        "patch",
        "deployment",
        "gitops-lifecycle-management-service-discovery",
        "-n",
        &n,
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"controller","resources":{"limits":{"cpu":"200m","memory":"256Mi"}}}]}}}}"#,
    ]);
    let containers = run(&[
        "get",
        "deployment",
        "gitops-lifecycle-management-service-discovery",
        "-n",
        &n,
        "-o",
        "jsonpath={.spec.template.spec.containers[*].name}",
    ]);
    assert_eq!(
        containers.stdout.trim(),
        "controller",
        "the patch merged into the existing container"
    );
    run(&[
        "rollout",
        "restart",
        "deployment",
        "gitops-lifecycle-management-service-discovery",
        "-n",
        &n,
    ]);
}

/// deploy/flux/ as kustomize builds it, accepted by the Flux HelmRelease CRD (moved from
/// flux-system into a test namespace; the static test checks it names flux-system).
#[tokio::test]
async fn flux_manifests_are_accepted_by_the_flux_crds() {
    let setup = setup().await;
    let ns = setup.env.namespace("flux").await.expect("namespace");
    let dir = workspace_root().join("deploy/flux");
    let built = kubectl(
        &["kustomize", dir.to_str().expect("utf-8")],
        &setup.kubeconfig,
        None,
    )
    .ok("kubectl kustomize deploy/flux");
    let mut objects = gitops_e2e::documents(&built.stdout);
    assert!(
        objects
            .iter()
            .any(|o| o["kind"] == "HelmRelease" && o["metadata"]["name"] == RELEASE)
    );
    for object in &mut objects {
        assert_eq!(
            object["metadata"]["namespace"],
            "flux-system",
            "{}",
            key(object)
        );
        object["metadata"]["namespace"] = Value::String(ns.name().to_owned());
    }
    kubectl(
        &[
            "apply",
            "--server-side",
            "--field-manager=gitops-e2e",
            "-f",
            "-",
        ],
        &setup.kubeconfig,
        Some(&to_yaml_stream(&objects)),
    )
    .ok("apply deploy/flux");
    // The runbook's first command.
    kubectl(
        &["get", "helmrelease", RELEASE, "-n", ns.name()],
        &setup.kubeconfig,
        None,
    )
    .ok("kubectl get helmrelease");
    // A field the CRD does not know is refused, so the acceptance above means something.
    let mut bad = objects[0].clone();
    bad["spec"]["notAField"] = json!(true);
    let refused = kubectl(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=gitops-e2e",
            "-f",
            "-",
        ],
        &setup.kubeconfig,
        Some(&bad.to_string()),
    );
    assert!(
        !refused.success,
        "an unknown field must be refused: {}",
        refused.combined()
    );
}
