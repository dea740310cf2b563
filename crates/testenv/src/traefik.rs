//! The pinned Traefik as a process of a test, with its Kubernetes CRD and Gateway API providers
//! reading one namespace of the test environment's API server (as the admin token), serving
//! plain HTTP on a free loopback port. There are no Pods to send traffic to without a node, so a
//! test puts a backend it runs on loopback behind a route with [`loopback_service`] (or an
//! ExternalName Service, which the CRD provider is allowed to follow and the Gateway API provider
//! refuses).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use crate::crds::FIELD_MANAGER;
use crate::error::{Error, IoContext, Result};
use crate::harness::TestEnv;
use crate::pins;
use crate::ports::free_port;

/// The GatewayClass every test's Traefik serves. Cluster-scoped and so shared: each Traefik reads
/// the Gateways of its own namespace only.
pub const GATEWAY_CLASS: &str = "gitops-testenv-traefik";

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
        let child = Command::new(&binary)
            .args([
                format!("--entryPoints.web.address=127.0.0.1:{web_port}"),
                "--api=true".to_owned(),
                "--providers.kubernetescrd=true".to_owned(),
                format!(
                    "--providers.kubernetescrd.endpoint={}",
                    env.control_plane().info().server
                ),
                format!("--providers.kubernetescrd.token={token}"),
                format!("--providers.kubernetescrd.certAuthFilePath={ca}"),
                format!("--providers.kubernetescrd.namespaces={namespace}"),
                "--providers.kubernetescrd.allowExternalNameServices=true".to_owned(),
                "--providers.kubernetesgateway=true".to_owned(),
                format!(
                    "--providers.kubernetesgateway.endpoint={}",
                    env.control_plane().info().server
                ),
                format!("--providers.kubernetesgateway.token={token}"),
                format!("--providers.kubernetesgateway.certAuthFilePath={ca}"),
                format!("--providers.kubernetesgateway.namespaces={namespace}"),
                "--log.level=INFO".to_owned(),
            ])
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

    /// Creates (or keeps) [`GATEWAY_CLASS`] and a Gateway `name` in Traefik's namespace whose one
    /// listener is the `web` entry point (Traefik matches listeners to entry points by port), for
    /// the HTTPRoutes of that namespace. Needs Gateway API's CRDs
    /// ([`install_third_party_crds`](crate::install_third_party_crds)).
    pub async fn create_gateway(&self, client: &kube::Client, name: &str) -> Result<()> {
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        let classes = gateway_api(client, None, "GatewayClass", "gatewayclasses");
        let class = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": GATEWAY_CONTROLLER},
        });
        classes
            .patch(GATEWAY_CLASS, &apply, &Patch::Apply(class))
            .await?;
        let gateways = gateway_api(client, Some(&self.namespace), "Gateway", "gateways");
        let gateway = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [{"name": "web", "port": self.web_port, "protocol": "HTTP"}],
            },
        });
        gateways.patch(name, &apply, &Patch::Apply(gateway)).await?;
        Ok(())
    }

    /// `http://127.0.0.1:<port><path>` on the `web` entry point.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.web_port)
    }

    /// Sends `GET <path>` with `headers` until Traefik answers `status` (a route takes a moment
    /// to be read from the API server) and returns that response; redirects are not followed.
    /// The error carries Traefik's log.
    pub async fn get_until(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        status: u16,
    ) -> std::result::Result<reqwest::Response, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building an HTTP client: {e}"))?;
        let url = self.url(path);
        crate::poll_until(
            &format!("{url} to answer {status}"),
            std::time::Duration::from_secs(60),
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

    /// What Traefik logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
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
/// EndpointSlice points at `127.0.0.1:port`: a backend the test runs on loopback, reachable
/// through both of Traefik's providers. The API server refuses loopback addresses in IPv4
/// EndpointSlices; as an FQDN slice's address (four DNS labels) it is accepted, and Traefik
/// dials it as the IP it is.
pub async fn loopback_service(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    port: u16,
) -> Result<()> {
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": "http", "port": port, "protocol": "TCP"}]},
    });
    Api::<Service>::namespaced(client.clone(), namespace)
        .patch(name, &apply, &Patch::Apply(service))
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
        "addressType": "FQDN",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    });
    Api::<EndpointSlice>::namespaced(client.clone(), namespace)
        .patch(name, &apply, &Patch::Apply(slice))
        .await?;
    Ok(())
}
