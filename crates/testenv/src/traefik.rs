//! The pinned Traefik with its Kubernetes CRD and Gateway API providers reading one namespace of
//! the test environment's API server, serving plain HTTP on its `web` entry point, two ways:
//!
//! - [`Traefik`]: a process of the test (as the admin token) on a free loopback port. There are
//!   no Pods to send traffic to without a node, so a test puts a backend it runs on loopback
//!   behind a route with [`backend_service`].
//! - [`TraefikPod`]: a Deployment on the environment's node, from the image of the same binary
//!   ([`crate::traefik_image`]), reaching the API server as users run it: in-cluster config
//!   (the `kubernetes` Service, the mounted ServiceAccount token) and the ClusterRoles upstream
//!   publishes for the two providers, read from the pinned module. A test's backend on the
//!   node's address goes behind a route with [`backend_service`] too.
//!
//! Either serves HTTPRoutes once [`TraefikWeb::create_gateway`] made a Gateway on its `web`
//! entry point.

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams,
};
use serde_json::{Value, json};

use crate::control_plane::client_for;
use crate::crds::FIELD_MANAGER;
use crate::error::{Error, IoContext, Result};
use crate::harness::{TestEnv, apply};
use crate::pins;
use crate::ports::free_port;
use crate::util::block_on;
use crate::wait::poll_until;

/// A running Traefik's `web` entry point.
pub trait TraefikWeb: Sync {
    /// `http://<address>:<port><path>` on the `web` entry point.
    fn url(&self, path: &str) -> String;

    /// What Traefik logged so far (for failure messages).
    fn log(&self) -> String;

    /// The namespace Traefik reads routes from.
    fn namespace(&self) -> &str;

    /// The port the `web` entry point listens on where Traefik runs (Traefik matches a Gateway's
    /// listeners to entry points by port).
    fn web_port(&self) -> u16;

    /// Creates (or keeps) the GatewayClass every test's Traefik serves and a Gateway `name` in Traefik's namespace whose one
    /// listener is the `web` entry point, for the HTTPRoutes of that namespace. Needs Gateway
    /// API's CRDs ([`install_third_party_crds`](crate::install_third_party_crds)).
    fn create_gateway(
        &self,
        client: &kube::Client,
        name: &str,
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            let classes = gateway_api(client, None, "GatewayClass", "gatewayclasses");
            let class = json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "metadata": {"name": GATEWAY_CLASS},
                "spec": {"controllerName": GATEWAY_CONTROLLER},
            });
            apply(classes, class).await?;
            let namespace = self.namespace();
            let gateways = gateway_api(client, Some(namespace), "Gateway", "gateways");
            let gateway = json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "gatewayClassName": GATEWAY_CLASS,
                    "listeners": [{"name": "web", "port": self.web_port(), "protocol": "HTTP"}],
                },
            });
            apply(gateways, gateway).await
        }
    }

    /// Sends `GET <path>` with `headers` until Traefik answers `status` (a route takes a moment
    /// to be read from the API server) and returns that response; redirects are not followed.
    /// The error carries Traefik's log.
    fn get_until(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        status: u16,
    ) -> impl Future<Output = std::result::Result<reqwest::Response, String>> + Send {
        async move {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("building an HTTP client: {e}"))?;
            let url = self.url(path);
            crate::poll_until(
                &format!("{url} to answer {status}"),
                Duration::from_secs(60),
                || async {
                    let request = headers
                        .iter()
                        .fold(http.get(&url), |request, (name, value)| {
                            request.header(*name, *value)
                        });
                    Ok(request
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().as_u16() == status))
                },
            )
            .await
            .map_err(|e| format!("{e}; traefik log:\n{}", self.log()))
        }
    }
}

/// The GatewayClass every test's Traefik serves. Cluster-scoped and so shared: each Traefik reads
/// the Gateways of its own namespace only.
const GATEWAY_CLASS: &str = "gitops-testenv-traefik";

/// Traefik's `controllerName` for Gateway API.
const GATEWAY_CONTROLLER: &str = "traefik.io/gateway-controller";

/// A running Traefik; stopped when dropped (also on panic).
#[derive(Debug)]
pub struct Traefik {
    child: Child,
    web_port: u16,
    namespace: String,
    log: PathBuf,
}

impl Traefik {
    /// Builds Traefik once (blocking: call from `spawn_blocking` or before the runtime) and
    /// starts it watching `namespace` of `env`.
    pub fn start(env: &TestEnv, namespace: &str) -> Result<Self> {
        crate::ensure_tools(&["traefik"])?;
        let (token, ca) = token_and_ca(env)?;
        let web_port = free_port()?;
        let binary = pins::binary("traefik", "traefik")?;
        let log = env
            .control_plane()
            .dir()
            .join(format!("traefik-{namespace}.log"));
        let log_file =
            std::fs::File::create(&log).context(|| format!("creating {}", log.display()))?;
        let server = &env.control_plane().info().server;
        let mut args = vec![
            format!("--entryPoints.web.address=127.0.0.1:{web_port}"),
            "--api=true".to_owned(),
            "--log.level=INFO".to_owned(),
        ];
        for provider in ["kubernetescrd", "kubernetesgateway"] {
            args.extend([
                format!("--providers.{provider}=true"),
                format!("--providers.{provider}.endpoint={server}"),
                format!("--providers.{provider}.token={token}"),
                format!("--providers.{provider}.certAuthFilePath={ca}"),
                format!("--providers.{provider}.namespaces={namespace}"),
            ]);
        }
        let child = Command::new(&binary)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context(|| format!("starting {}", binary.display()))?;
        Ok(Self {
            child,
            web_port,
            namespace: namespace.to_owned(),
            log,
        })
    }
}

/// Signs `username` in to the authentik double at `authentik` through its test shortcut
/// (`POST /_double/sign-in`, which also makes the user a member of `groups`); returns the
/// session cookie a browser would send to authentik. A test step: panics, saying which, when
/// the double does not answer as documented.
pub async fn sign_in(
    http: &reqwest::Client,
    authentik: &str,
    username: &str,
    groups: &[&str],
) -> String {
    let session: Value = http
        .post(format!("{authentik}/_double/sign-in"))
        .json(&json!({"username": username, "groups": groups}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("signing {username} in to the double: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("the double's sign-in answer: {e}"));
    let cookie = session["cookie"].as_str();
    cookie
        .unwrap_or_else(|| panic!("no cookie in the double's sign-in answer: {session}"))
        .to_owned()
}

/// The `name=value` of a response's Set-Cookie header (what a browser sends back).
pub fn set_cookie(response: &reqwest::Response) -> Option<String> {
    let header = response.headers().get("set-cookie")?.to_str().ok()?;
    header.split(';').next().map(str::to_owned)
}

impl TraefikWeb for Traefik {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.web_port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn web_port(&self) -> u16 {
        self.web_port
    }
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The static admin token and the CA file of the environment's kubeconfig.
fn token_and_ca(env: &TestEnv) -> Result<(String, String)> {
    let path = env.kubeconfig();
    let text = std::fs::read_to_string(&path).context(|| format!("reading {}", path.display()))?;
    let config: Value = serde_saphyr::from_str(&text).map_err(|error| Error::Yaml {
        path: path.clone(),
        message: error.to_string(),
    })?;
    let token = config["users"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|u| u["user"]["token"].as_str());
    let ca = config["clusters"][0]["cluster"]["certificate-authority"].as_str();
    match (token, ca) {
        (Some(token), Some(ca)) => Ok((token.to_owned(), ca.to_owned())),
        _ => Err(Error::CommandOutput {
            command: format!("reading {}", path.display()),
            detail: "no token user or certificate-authority file".into(),
        }),
    }
}

/// Name of the Deployment and ServiceAccount in the watched namespace.
const POD_NAME: &str = "traefik";
/// Upstream's ClusterRoles (and bindings) for the Kubernetes CRD and Gateway API providers, in
/// the pinned module.
const PROVIDER_RBAC: [&str; 2] = [
    "docs/content/reference/dynamic-configuration/kubernetes-crd-rbac.yml",
    "docs/content/reference/dynamic-configuration/kubernetes-gateway-rbac.yml",
];
/// Where the `web` entry point listens in the Pod.
const WEB_PORT: u16 = 8000;
/// The `traefik` entry point: `/ping` for the readiness probe.
const PING_PORT: u16 = 8080;
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Traefik running as a Pod on the environment's node, watching one namespace; its
/// Deployment, ServiceAccount and cluster RBAC are deleted when dropped.
#[derive(Debug)]
pub struct TraefikPod {
    namespace: String,
    /// Name of the ClusterRole and ClusterRoleBinding (cluster-wide, so per namespace).
    cluster_role: String,
    pod_ip: String,
    kubeconfig: PathBuf,
}

impl TraefikPod {
    /// Imports the Traefik image into the node (building it on first use) and deploys it into
    /// `namespace`, watching that namespace; returns once its Pod is Ready (its `/ping`
    /// answers; a route may take a moment more to be read, which [`TraefikWeb::get_until`]
    /// waits for).
    pub async fn deploy(env: &TestEnv, namespace: &str) -> Result<Self> {
        let plane = env.control_plane().clone();
        let (image, rules) = tokio::task::spawn_blocking(move || {
            let image = crate::traefik_image()?;
            plane.import_image(&image.archive)?;
            Ok::<_, Error>((image, upstream_cluster_role_rules()?))
        })
        .await
        .map_err(|error| Error::HelperPanicked(error.to_string()))??;
        let client = env.client().await?;
        let cluster_role = format!("gitops-testenv-traefik-{namespace}");
        apply(
            Api::<ServiceAccount>::namespaced(client.clone(), namespace),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": POD_NAME}}),
        )
        .await?;
        apply(
            Api::<ClusterRole>::all(client.clone()),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": cluster_role},
                "rules": rules,
            }),
        )
        .await?;
        apply(
            Api::<ClusterRoleBinding>::all(client.clone()),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": cluster_role},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
                "subjects": [{"kind": "ServiceAccount", "name": POD_NAME, "namespace": namespace}],
            }),
        )
        .await?;
        apply(
            Api::<Deployment>::namespaced(client.clone(), namespace),
            deployment(&image.reference, namespace),
        )
        .await?;
        let mut deployed = Self {
            namespace: namespace.to_owned(),
            cluster_role,
            pod_ip: String::new(),
            kubeconfig: env.kubeconfig(),
        };
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        deployed.pod_ip = poll_until(
            &format!("the Traefik Pod in {namespace} to be Ready"),
            READY_TIMEOUT,
            || async {
                let listed = pods.list(&pod_selector()).await?;
                Ok(listed.items.into_iter().find_map(|pod| {
                    let status = pod.status?;
                    let ready =
                        status.conditions.iter().flatten().any(|condition| {
                            condition.type_ == "Ready" && condition.status == "True"
                        });
                    status.pod_ip.filter(|_| ready)
                }))
            },
        )
        .await
        .map_err(|error| Error::CommandOutput {
            command: format!("deploying Traefik into {namespace}"),
            detail: format!("{error}; its log:\n{}", deployed.log()),
        })?;
        Ok(deployed)
    }
}

impl TraefikWeb for TraefikPod {
    /// The Pod's own address: the node's pod network is routed on this machine.
    fn url(&self, path: &str) -> String {
        format!("http://{}:{WEB_PORT}{path}", self.pod_ip)
    }

    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn web_port(&self) -> u16 {
        WEB_PORT
    }

    fn log(&self) -> String {
        let (kubeconfig, namespace) = (self.kubeconfig.clone(), self.namespace.clone());
        let logs = block_on(async move {
            let pods: Api<Pod> = Api::namespaced(client_for(&kubeconfig, None).await?, &namespace);
            let mut text = String::new();
            for pod in pods.list(&pod_selector()).await?.items {
                let name = pod.metadata.name.unwrap_or_default();
                let log = pods.logs(&name, &LogParams::default()).await?;
                text.push_str(&format!("--- pod {name}\n{log}"));
            }
            Ok::<_, Error>(text)
        });
        match logs {
            Ok(Ok(text)) => text,
            Ok(Err(error)) | Err(error) => format!("(no log: {error})"),
        }
    }
}

impl Drop for TraefikPod {
    fn drop(&mut self) {
        let (kubeconfig, namespace, cluster_role) = (
            self.kubeconfig.clone(),
            self.namespace.clone(),
            self.cluster_role.clone(),
        );
        // Drop cannot await, and may run while a panic unwinds a test's runtime.
        let deleted = block_on(async move {
            let client = client_for(&kubeconfig, None).await?;
            delete(
                Api::<Deployment>::namespaced(client.clone(), &namespace),
                POD_NAME,
            )
            .await?;
            delete(
                Api::<ServiceAccount>::namespaced(client.clone(), &namespace),
                POD_NAME,
            )
            .await?;
            delete(
                Api::<ClusterRoleBinding>::all(client.clone()),
                &cluster_role,
            )
            .await?;
            delete(Api::<ClusterRole>::all(client), &cluster_role).await?;
            Ok::<_, Error>(())
        });
        if let Err(error) | Ok(Err(error)) = deleted {
            eprintln!(
                "testenv: could not delete Traefik in {}: {error}",
                self.namespace
            );
        }
    }
}

/// Deletes `name` through `api`; one already gone counts as deleted.
async fn delete<K>(api: Api<K>, name: &str) -> kube::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other.map(drop),
    }
}

fn pod_selector() -> ListParams {
    ListParams::default().labels(&format!("app.kubernetes.io/name={POD_NAME}"))
}

/// One replica of the image, under the restricted Pod Security Standard, reading `namespace`
/// through in-cluster config (no endpoint or token given: the Pod's own).
fn deployment(image: &str, namespace: &str) -> Value {
    let labels = json!({"app.kubernetes.io/name": POD_NAME});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": POD_NAME, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": POD_NAME,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": POD_NAME,
                        "image": image,
                        "imagePullPolicy": "Never",
                        "args": [
                            format!("--entryPoints.web.address=:{WEB_PORT}"),
                            format!("--entryPoints.traefik.address=:{PING_PORT}"),
                            "--ping=true",
                            // No update check: Pods here reach nothing beyond this machine.
                            "--global.checkNewVersion=false",
                            "--providers.kubernetescrd=true",
                            format!("--providers.kubernetescrd.namespaces={namespace}"),
                            "--providers.kubernetesgateway=true",
                            format!("--providers.kubernetesgateway.namespaces={namespace}"),
                            "--log.level=INFO",
                        ],
                        "ports": [
                            {"name": "web", "containerPort": WEB_PORT},
                            {"name": "traefik", "containerPort": PING_PORT},
                        ],
                        "readinessProbe": {
                            "httpGet": {"path": "/ping", "port": PING_PORT},
                            "periodSeconds": 1,
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }],
                },
            },
        },
    })
}

/// The rules of upstream's ClusterRoles for the providers the Pod runs ([`PROVIDER_RBAC`]), one
/// list (blocking: may download the pinned module).
fn upstream_cluster_role_rules() -> Result<Value> {
    let traefik = pins::tool("traefik")?;
    let module = crate::tools::go_mod_download(&traefik.module, &traefik.version)?;
    let mut rules = Vec::new();
    for file in PROVIDER_RBAC {
        let path = module.dir.join(file);
        let text =
            std::fs::read_to_string(&path).context(|| format!("reading {}", path.display()))?;
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|error| Error::Yaml {
                path: path.clone(),
                message: error.to_string(),
            })?;
        let role = documents
            .into_iter()
            .find(|document| document["kind"] == "ClusterRole")
            .ok_or_else(|| Error::Yaml {
                path: path.clone(),
                message: "no ClusterRole".into(),
            })?;
        let role_rules = role["rules"].as_array().ok_or_else(|| Error::Yaml {
            path: path.clone(),
            message: "a ClusterRole without rules".into(),
        })?;
        rules.extend(role_rules.iter().cloned());
    }
    Ok(Value::Array(rules))
}

fn gateway_api(
    client: &kube::Client,
    namespace: Option<&str>,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind),
        plural,
    );
    match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// A Service `name` in `namespace` (port `port`, named `http`) without a selector, whose one
/// EndpointSlice points at `ip:port`: a backend the test runs itself (on loopback for a Traefik
/// process, on the node's address for a Traefik Pod), reachable through both of Traefik's
/// providers.
pub async fn backend_service(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    ip: IpAddr,
    port: u16,
) -> Result<()> {
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": "http", "port": port, "protocol": "TCP"}]},
    });
    apply(
        Api::<Service>::namespaced(client.clone(), namespace),
        service,
    )
    .await?;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": FIELD_MANAGER,
            },
        },
        "addressType": endpoint_address_type(ip),
        "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    });
    apply(
        Api::<EndpointSlice>::namespaced(client.clone(), namespace),
        slice,
    )
    .await
}

/// The EndpointSlice `addressType` for `ip`. The API server refuses loopback addresses in IP
/// slices; as an FQDN slice's address (four DNS labels) 127.0.0.1 is accepted, and Traefik dials
/// it as the IP it is.
fn endpoint_address_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => "FQDN",
        IpAddr::V4(_) => "IPv4",
        // An IPv6 address is no DNS name, so loopback ::1 has no way in.
        IpAddr::V6(_) => "IPv6",
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn loopback_backends_get_an_fqdn_slice_and_others_an_ip_slice() {
        assert_eq!(endpoint_address_type(Ipv4Addr::LOCALHOST.into()), "FQDN");
        assert_eq!(
            endpoint_address_type(Ipv4Addr::new(10, 88, 0, 1).into()),
            "IPv4"
        );
        assert_eq!(endpoint_address_type(Ipv6Addr::LOCALHOST.into()), "IPv6");
    }
}
