//! End to end through real Pods: the chart installed with the locally built images
//! (`cargo xtask image`) on the test environment's node, as users run it.
//!
//! One test function: one node runs per machine, and each step builds on the previous one
//! (install → ProxyConfig Ready → forward auth through a Traefik Pod's CRD and Gateway API
//! providers → a real Job cleaned up → leader handover → logs).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use authentik_double::{AuthentikDouble, DEFAULT_TOKEN, DoubleConfig, DoubleHandle};
use gitops_crd::{Phase, ProxyConfig};
use gitops_e2e::{RELEASE, chart_dir, helm, kubectl, render, workspace_root};
use gitops_harness::forward_auth::{
    ProtectedRoute, RecordingBackend, create_group, create_guarded_route,
    only_signed_in_members_reach_the_backend,
};
use gitops_proxy_crds::gateway_httproute::{HttpRoute, HttpRouteRulesFiltersType};
use gitops_testenv::images::{archive_path, read_archive};
use gitops_testenv::{
    NODE_IP, TestEnv, TraefikPod, TraefikWeb, apply, backend_service, poll_until,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NAMESPACE: &str = "flux-system";
const WAIT: Duration = Duration::from_secs(180);
/// The chart's default Lease duration.
const LEASE_DURATION: Duration = Duration::from_secs(15);
const SERVICE_DISCOVERY: &str = "gitops-service-discovery";
const CLEANUP: &str = "gitops-cleanup";
/// Namespace of the forward-auth step: the protected backend, its routes and the Traefik Pod.
const WEB: &str = "web";

gitops_testenv::node_watchdog!();

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_runs_on_a_real_node() {
    gitops_runtime::install_crypto_provider();
    let root = workspace_root();
    // Read before the node starts: a missing or broken archive is one line naming the fix.
    let images: BTreeMap<&str, (PathBuf, String)> = [SERVICE_DISCOVERY, CLEANUP]
        .into_iter()
        .map(|name| {
            let archive = archive_path(&root, name);
            let image = read_archive(&archive).unwrap_or_else(|error| panic!("{error}"));
            (name, (archive, image.reference))
        })
        .collect();

    let env = TestEnv::with_node().expect("an environment with a node");
    let plane = env.control_plane();
    for (archive, _) in images.values() {
        plane.import_image(archive).expect("image imported");
    }
    let client = env.client().await.expect("client");
    gitops_e2e::install_all_crds(&client).await;
    let double = AuthentikDouble::start(DoubleConfig {
        listen: Some(SocketAddr::new(NODE_IP.into(), 0)),
        ..DoubleConfig::default()
    })
    .await
    .expect("authentik double on the node's address");

    let kubeconfig = env.kubeconfig();
    let _cleanup = Installed {
        kubeconfig: kubeconfig.clone(),
    };
    create_namespace(&client, NAMESPACE).await;
    create_token_secret(&client).await;
    let sets = chart_settings(&images, &double);
    let set_args: Vec<String> = sets.iter().map(|set| format!("--set={set}")).collect();
    let chart = chart_dir();
    let mut install = vec![
        "install",
        RELEASE,
        chart.to_str().expect("UTF-8 path"),
        "--namespace",
        NAMESPACE,
        "--wait",
        "--timeout=3m",
    ];
    install.extend(set_args.iter().map(String::as_str));
    helm(&install, Some(&kubeconfig)).ok("helm install on the node");

    deployments_are_available_with_the_charts_security_context(&client, &sets).await;
    let proxyconfig = runbook_proxyconfig_goes_ready(&client, &kubeconfig).await;
    forward_auth_through_a_traefik_pod(&env, &client, &double).await;
    helm_test_passes(&kubeconfig);
    a_real_job_runs_and_is_cleaned_up(&client, &images).await;
    leader_hands_over_within_the_lease_duration(&client, &double, &proxyconfig).await;
    logs_are_json_without_the_token(&kubeconfig);
}

/// `--set` values: the local images, the double on the node's address, two service-discovery
/// replicas, a short Job retention.
fn chart_settings(
    images: &BTreeMap<&str, (PathBuf, String)>,
    double: &DoubleHandle,
) -> Vec<String> {
    let mut sets = vec![
        format!("authentik.host=http://{}", double.addr()),
        "authentik.existingSecret=authentik-token".to_owned(),
        // The product CRDs are installed like in every other test (Helm would not adopt them).
        "crds.install=false".to_owned(),
        "serviceDiscovery.replicas=2".to_owned(),
        "cleanup.completedJobsTTL=5s".to_owned(),
    ];
    for (name, key) in [
        (SERVICE_DISCOVERY, "serviceDiscovery"),
        (CLEANUP, "cleanup"),
    ] {
        let reference = &images[name].1;
        let (registry, rest) = reference.split_once('/').expect("registry/repository:tag");
        let (repository, tag) = rest.rsplit_once(':').expect("a tag");
        sets.push(format!("image.registry={registry}"));
        sets.push(format!("{key}.image.repository={repository}"));
        sets.push(format!("{key}.image.tag={tag}"));
    }
    sets
}

async fn create_namespace(client: &Client, name: &str) {
    let namespace = serde_json::from_value(json!({"metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }}}))
    .expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|error| panic!("namespace {name}: {error}"));
}

async fn create_token_secret(client: &Client) {
    let secret = serde_json::from_value(json!({
        "metadata": {"name": "authentik-token"},
        "stringData": {"token": DEFAULT_TOKEN},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .expect("token Secret");
}

async fn release_pods(client: &Client) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={RELEASE}")))
        .await
        .expect("list Pods")
        .items
}

fn condition_true(conditions: Option<&Vec<Value>>, kind: &str) -> bool {
    conditions
        .into_iter()
        .flatten()
        .any(|condition| condition["type"] == kind && condition["status"] == "True")
}

/// The release's Pods: two service-discovery replicas and one cleanup Pod.
const RELEASE_PODS: usize = 3;

/// Ready: every readiness probe passes.
fn pod_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

async fn deployments_are_available_with_the_charts_security_context(
    client: &Client,
    sets: &[String],
) {
    let deployments = Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
        .expect("list Deployments");
    assert_eq!(deployments.items.len(), 2, "both controllers deployed");
    for deployment in &deployments.items {
        let value = serde_json::to_value(deployment).expect("JSON");
        assert!(
            condition_true(value["status"]["conditions"].as_array(), "Available"),
            "{} Available: {}",
            deployment.metadata.name.as_deref().unwrap_or_default(),
            value["status"]
        );
    }

    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let rendered = render(RELEASE, NAMESPACE, &[], &sets);
    let expected: BTreeMap<String, Value> = rendered
        .iter()
        .filter(|object| object["kind"] == "Deployment")
        .map(|object| {
            let name = object["metadata"]["name"]
                .as_str()
                .expect("name")
                .to_owned();
            (name, object["spec"]["template"]["spec"].clone())
        })
        .collect();
    let pods = release_pods(client).await;
    assert_eq!(
        pods.len(),
        RELEASE_PODS,
        "two service-discovery replicas and one cleanup Pod"
    );
    for pod in pods {
        let value = serde_json::to_value(&pod).expect("JSON");
        let name = pod.metadata.name.clone().unwrap_or_default();
        assert!(pod_ready(&pod), "{name} Ready: {}", value["status"]);
        let owner = expected
            .iter()
            .find(|(deployment, _)| name.starts_with(deployment.as_str()))
            .map(|(_, spec)| spec)
            .unwrap_or_else(|| panic!("{name} belongs to no rendered Deployment"));
        assert_eq!(
            value["spec"]["securityContext"], owner["securityContext"],
            "{name}: Pod securityContext as rendered"
        );
        assert_eq!(
            value["spec"]["containers"][0]["securityContext"],
            owner["containers"][0]["securityContext"],
            "{name}: container securityContext as rendered"
        );
    }
}

/// The original runbook's Alertmanager ProxyConfig (deploy/examples), reconciled by the
/// service-discovery Pod through the `kubernetes` Service with its mounted token.
async fn runbook_proxyconfig_goes_ready(client: &Client, kubeconfig: &Path) -> String {
    create_namespace(client, "monitoring").await;
    let example = workspace_root().join("deploy/examples/alertmanager.yaml");
    kubectl(
        &["apply", "-f", example.to_str().expect("UTF-8 path")],
        kubeconfig,
        None,
    )
    .ok("kubectl apply the runbook's ProxyConfig");
    wait_ready(client, "monitoring", "alertmanager-proxy").await;
    "alertmanager-proxy".to_owned()
}

/// Waits until ProxyConfig `namespace/name` is Ready (reconciled by a service-discovery Pod).
async fn wait_ready(client: &Client, namespace: &str, name: &str) {
    let proxyconfigs: Api<ProxyConfig> = Api::namespaced(client.clone(), namespace);
    poll_until(
        &format!("ProxyConfig {namespace}/{name} to be Ready"),
        WAIT,
        || {
            let proxyconfigs = proxyconfigs.clone();
            async move {
                let proxyconfig = proxyconfigs.get(name).await?;
                Ok(proxyconfig
                    .status
                    .is_some_and(|status| status.phase == Some(Phase::Ready))
                    .then_some(()))
            }
        },
    )
    .await
    .unwrap_or_else(|error| panic!("{error}"));
}

/// The request path as users run it: Traefik as a Pod (in-cluster config, upstream's RBAC)
/// serving an IngressRoute through the Middleware the service-discovery Pod keeps for a
/// ProxyConfig with `forwardAuth.traefik`, in front of a backend in this process on the node's
/// address (a Service without selector and its EndpointSlice). Signed out → sign-in redirect and
/// the backend never sees it; skipped path → backend without identity; an outsider never gets
/// through; a member gets through with the outpost's identity headers. Then the same through
/// the Pod's Gateway API provider.
async fn forward_auth_through_a_traefik_pod(env: &TestEnv, client: &Client, double: &DoubleHandle) {
    let started = Instant::now();
    create_namespace(client, WEB).await;
    let group = "team-web";
    create_group(&double.api_url(), double.token(), group).await;
    let backend = RecordingBackend::default();
    let port = backend.start(NODE_IP.into()).await.port();
    backend_service(client, WEB, "backend", NODE_IP.into(), port)
        .await
        .expect("backend Service");
    let host = "web.k8s.example.com";
    apply(
        Api::<ProxyConfig>::namespaced(client.clone(), WEB),
        json!({
            "apiVersion": "gitops.io/v1", "kind": "ProxyConfig",
            "metadata": {"name": "web"},
            "spec": {
                "serviceName": "backend",
                "serviceNamespace": WEB,
                "externalHost": host,
                "internalHost": format!("http://backend.{WEB}.svc.cluster.local:{port}"),
                "port": port,
                "authentikConfig": {
                    "providerName": "web",
                    "skipPathRegex": "^/api/",
                    "allowedGroups": [group],
                },
                "forwardAuth": {"traefik": {}},
            },
        }),
    )
    .await
    .expect("ProxyConfig with forwardAuth");
    create_guarded_route(client, WEB, host, "web-authentik", "backend", port).await;
    wait_ready(client, WEB, "web").await;

    let traefik = TraefikPod::deploy(env, WEB)
        .await
        .unwrap_or_else(|error| panic!("Traefik as a Pod: {error}"));
    let authentik = double.base_url();
    let route = || ProtectedRoute {
        traefik: &traefik,
        host,
        backend: &backend,
        authentik: &authentik,
        group,
        skipped_path: "/api/version",
    };
    only_signed_in_members_reach_the_backend(route()).await;
    eprintln!(
        "forward auth through the Traefik Pod: {}s",
        started.elapsed().as_secs()
    );
    let started = Instant::now();
    forward_auth_through_the_pods_gateway_api_provider(client, route(), port).await;
    eprintln!(
        "forward auth through the Traefik Pod's Gateway API provider: {}s",
        started.elapsed().as_secs()
    );
}

/// What the HTTPRoute's own filter sets on the requests it forwards, so that the backend tells
/// the Gateway API provider's route from the IngressRoute serving the same host.
const SERVED_BY: (&str, &str) = ("x-served-by", "gateway-api");

/// The same host through the same Traefik Pod's Gateway API provider, which has no ExternalAuth
/// filter: an HTTPRoute for `/app` and `/api/` on a Gateway on the Pod's `web` entry point,
/// named by the ProxyConfig's `forwardAuth.httpRoute` with the ExtensionRef filter, so the
/// service-discovery Pod adds an ExtensionRef to the same Middleware to its rule. Its path
/// matches outrank the IngressRoute's host-only rule (Traefik ranks Gateway API path matches
/// above 10,000, an IngressRoute by its rule's length), and its RequestHeaderModifier marks what
/// it forwards ([`SERVED_BY`]): once a request shows it serving, the whole request path is
/// checked again and the member's request must carry the mark.
async fn forward_auth_through_the_pods_gateway_api_provider(
    client: &Client,
    route: ProtectedRoute<'_, TraefikPod>,
    port: u16,
) {
    let (traefik, host, backend) = (route.traefik, route.host, route.backend);
    let routes: Api<HttpRoute> = Api::namespaced(client.clone(), WEB);
    let prefix = |value: &str| json!({"path": {"type": "PathPrefix", "value": value}});
    apply(
        routes.clone(),
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web-gateway"},
            "spec": {
                "parentRefs": [{"name": "gateway"}],
                "hostnames": [host],
                "rules": [{
                    "matches": [prefix("/app"), prefix("/api")],
                    "filters": [{
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"set": [{"name": SERVED_BY.0, "value": SERVED_BY.1}]},
                    }],
                    "backendRefs": [{"name": "backend", "port": port}],
                }],
            },
        }),
    )
    .await
    .expect("HTTPRoute");
    let http_route = json!({"name": "web-gateway", "filter": "ExtensionRef"});
    Api::<ProxyConfig>::namespaced(client.clone(), WEB)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"forwardAuth": {"httpRoute": http_route}}})),
        )
        .await
        .expect("ProxyConfig names the HTTPRoute");
    // No Gateway before the rule is guarded: an open route would let requests through.
    poll_until(
        "HTTPRoute web-gateway to run the Middleware first",
        WAIT,
        || {
            let routes = routes.clone();
            async move {
                let route = routes.get("web-gateway").await?;
                let first_filter = route.spec.rules.iter().flatten().next().and_then(|rule| {
                    rule.filters
                        .as_ref()?
                        .first()
                        .map(|filter| filter.r#type.clone())
                });
                Ok((first_filter == Some(HttpRouteRulesFiltersType::ExtensionRef)).then_some(()))
            }
        },
    )
    .await
    .unwrap_or_else(|error| panic!("{error}"));
    traefik
        .create_gateway(client, "gateway")
        .await
        .expect("Gateway on the Pod's web entry point");
    let served_by_the_http_route = || {
        let (_, headers) = backend.last();
        headers
            .get(SERVED_BY.0)
            .is_some_and(|value| value == SERVED_BY.1)
    };
    poll_until("the HTTPRoute to serve the skipped path", WAIT, || async {
        traefik
            .get_until(route.skipped_path, &[("Host", host)], 200)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        Ok(served_by_the_http_route().then_some(()))
    })
    .await
    .unwrap_or_else(|error| panic!("{error}; traefik log:\n{}", traefik.log()));

    only_signed_in_members_reach_the_backend(route).await;
    assert!(
        served_by_the_http_route(),
        "the member's request came through the IngressRoute"
    );
}

/// A Job that really runs on the node (the cleanup image printing its version), deleted by
/// the cleanup Pod once its 5 s retention has passed.
async fn a_real_job_runs_and_is_cleaned_up(
    client: &Client,
    images: &BTreeMap<&str, (PathBuf, String)>,
) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), "monitoring");
    let job = serde_json::from_value(json!({
        "metadata": {"name": "print-version"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "version",
                    "image": images[CLEANUP].1,
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["--version"],
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }],
            }},
        },
    }))
    .expect("Job");
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create Job");
    poll_until("the Job to complete on the node", WAIT, || {
        let jobs = jobs.clone();
        async move {
            let job = jobs.get_opt("print-version").await?;
            Ok(job
                .and_then(|job| job.status)
                .and_then(|status| status.succeeded)
                .filter(|succeeded| *succeeded == 1)
                .map(drop))
        }
    })
    .await
    .expect("Job Complete");
    poll_until("the cleanup Pod to delete the Job", WAIT, || {
        let jobs = jobs.clone();
        async move { Ok(jobs.get_opt("print-version").await?.is_none().then_some(())) }
    })
    .await
    .expect("Job deleted after its retention");
}

async fn lease_holder(client: &Client) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), NAMESPACE)
        .get_opt(SERVICE_DISCOVERY)
        .await
        .expect("read Lease")
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

/// Deleting the leading service-discovery Pod: the other replica leads within the Lease
/// duration, and authentik holds the runbook's provider exactly once.
async fn leader_hands_over_within_the_lease_duration(
    client: &Client,
    double: &DoubleHandle,
    proxyconfig: &str,
) {
    let leader = lease_holder(client)
        .await
        .expect("a service-discovery leader");
    let last_request = double.requests().last().map(|request| request.seq);
    let deleted = Instant::now();
    Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .delete(&leader, &DeleteParams::default())
        .await
        .expect("delete the leader Pod");
    let new_leader = poll_until("another replica to lead", WAIT, || {
        let (client, leader) = (client.clone(), leader.clone());
        async move {
            Ok(lease_holder(&client)
                .await
                .filter(|holder| !holder.is_empty() && *holder != leader))
        }
    })
    .await
    .expect("a new leader");
    let handover = deleted.elapsed();
    assert!(
        handover <= LEASE_DURATION,
        "{new_leader} took over after {handover:?}, more than the Lease duration"
    );
    // The new leader reads authentik afresh (its first full sync); nothing may be created again.
    poll_until("the new leader to talk to authentik", WAIT, || async move {
        let newer = double
            .requests()
            .iter()
            .any(|request| Some(request.seq) > last_request);
        Ok(newer.then_some(()))
    })
    .await
    .expect("the new leader reconciles");
    // The new leader keeps it Ready.
    wait_ready(client, "monitoring", proxyconfig).await;
    let providers: Vec<_> = double
        .providers()
        .into_iter()
        .filter(|provider| provider.name == proxyconfig)
        .collect();
    assert_eq!(
        providers.len(),
        1,
        "one provider after the handover: {providers:?}"
    );
    // The Deployment replaces the deleted Pod; the last step reads every release Pod's log.
    poll_until(
        "the deleted Pod replaced and every release Pod Ready",
        WAIT,
        || async {
            let pods = release_pods(client).await;
            let ready = pods.len() == RELEASE_PODS && pods.iter().all(pod_ready);
            Ok(ready.then_some(()))
        },
    )
    .await
    .expect("the release's Pods back");
}

/// `helm test`: the chart's test Pod (the service-discovery image's `check-authentik`) reaches
/// the double with the mounted token and exits 0. (Its line cannot be read here: the chart
/// deletes a test Pod that succeeded, so `--logs` would find none; a failed one stays for
/// `kubectl logs`.)
fn helm_test_passes(kubeconfig: &Path) {
    let output = helm(
        &["test", RELEASE, "--namespace", NAMESPACE, "--timeout=2m"],
        Some(kubeconfig),
    )
    .ok("helm test");
    let suite = format!("TEST SUITE:     {RELEASE}-test-authentik");
    assert!(
        output.stdout.contains(&suite) && output.stdout.contains("Phase:          Succeeded"),
        "{}",
        output.stdout
    );
}

/// `kubectl logs` of both controllers: JSON lines, and never the token.
fn logs_are_json_without_the_token(kubeconfig: &Path) {
    let selector = format!("--selector=app.kubernetes.io/instance={RELEASE}");
    let logs = kubectl(
        &[
            "logs",
            "--namespace",
            NAMESPACE,
            &selector,
            "--all-containers",
            "--tail=-1",
        ],
        kubeconfig,
        None,
    )
    .ok("kubectl logs");
    let lines: Vec<&str> = logs
        .stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert!(!lines.is_empty(), "the controllers logged nothing");
    for line in lines {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
    }
    assert!(
        !logs.stdout.contains(DEFAULT_TOKEN),
        "a controller logged the token"
    );
}

/// Uninstalls the release and deletes the namespaces when the test ends, so a node kept up
/// between runs (`cargo xtask testenv up --node`) can run the test again.
struct Installed {
    kubeconfig: PathBuf,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = helm(
            &[
                "uninstall",
                RELEASE,
                "--namespace",
                NAMESPACE,
                "--wait=false",
            ],
            Some(&self.kubeconfig),
        );
        // Waits, so that the next run on a node kept up finds the names free.
        let _ = kubectl(
            &[
                "delete",
                "namespace",
                NAMESPACE,
                "monitoring",
                WEB,
                "--ignore-not-found",
                "--timeout=120s",
            ],
            &self.kubeconfig,
            None,
        );
    }
}
