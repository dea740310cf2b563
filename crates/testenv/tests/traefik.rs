//! The pinned Traefik builds from its Go module and runs as a process against the test API
//! server with its Kubernetes CRD provider: an IngressRoute created in the API server becomes a
//! route Traefik serves.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gitops_testenv::{TestEnv, install_third_party_crds, pins, poll_until};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

/// Stops Traefik when the test ends, also on panic.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The static admin token and the CA of the environment's kubeconfig (context
/// `gitops-testenv-token`).
fn token_and_ca(env: &TestEnv) -> (String, String) {
    let text = std::fs::read_to_string(env.kubeconfig()).expect("kubeconfig");
    let config: Value = serde_saphyr::from_str(&text).expect("kubeconfig parses");
    let token = config["users"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|u| u["user"]["token"].as_str())
        .expect("a token user")
        .to_owned();
    let ca = config["clusters"][0]["cluster"]["certificate-authority"]
        .as_str()
        .expect("CA file")
        .to_owned();
    (token, ca)
}

/// An IngressRoute in `ns` sending `probe.example.com` to Traefik's own API (no backend Pod is
/// needed: there is no kubelet), through `middlewares` when given.
async fn create_probe_route(client: &kube::Client, ns: &str, middlewares: Value) {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("traefik.io", "v1alpha1", "IngressRoute"),
        "ingressroutes",
    );
    let route = DynamicObject::new("probe", &resource).data(json!({"spec": {
        "entryPoints": ["web"],
        "routes": [{
            "match": "Host(`probe.example.com`)",
            "kind": "Rule",
            "middlewares": middlewares,
            "services": [{"name": "api@internal", "kind": "TraefikService"}],
        }],
    }}));
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource)
        .create(&PostParams::default(), &route)
        .await
        .expect("IngressRoute created");
}

/// Builds (once) and starts Traefik watching `ns`; returns it and its web port.
async fn start_traefik(env: &TestEnv, ns: &str) -> (Running, u16, std::path::PathBuf) {
    tokio::task::spawn_blocking(|| gitops_testenv::ensure_tools(&["traefik"]))
        .await
        .expect("build task")
        .expect("traefik builds");
    let (token, ca) = token_and_ca(env);
    let web = free_port();
    let binary = pins::binary("traefik", "traefik").expect("pinned traefik");
    let log = env.control_plane().dir().join(format!("traefik-{ns}.log"));
    let log_file = std::fs::File::create(&log).expect("log file");
    let running = Running(
        Command::new(&binary)
            .args([
                format!("--entryPoints.web.address=127.0.0.1:{web}"),
                "--api=true".to_owned(),
                "--providers.kubernetescrd=true".to_owned(),
                format!(
                    "--providers.kubernetescrd.endpoint={}",
                    env.control_plane().info().server
                ),
                format!("--providers.kubernetescrd.token={token}"),
                format!("--providers.kubernetescrd.certAuthFilePath={ca}"),
                format!("--providers.kubernetescrd.namespaces={ns}"),
                "--log.level=INFO".to_owned(),
            ])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("traefik starts"),
    );
    (running, web, log)
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Waits until Traefik answers `path` on the probe host with `status`; returns the response.
async fn probe_until(
    web: u16,
    path: &str,
    cookie: Option<&str>,
    status: u16,
    log: &std::path::Path,
) -> reqwest::Response {
    let http = http();
    let url = format!("http://127.0.0.1:{web}{path}");
    poll_until(
        "Traefik to serve the IngressRoute",
        Duration::from_secs(60),
        || async {
            let mut req = http.get(&url).header("Host", "probe.example.com");
            if let Some(c) = cookie {
                req = req.header("Cookie", c);
            }
            Ok(req
                .send()
                .await
                .ok()
                .filter(|r| r.status().as_u16() == status))
        },
    )
    .await
    .unwrap_or_else(|e| {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        panic!("{e}; traefik log:\n{tail}")
    })
}

#[tokio::test]
async fn traefik_serves_an_ingressroute_read_from_the_api_server() {
    let env = TestEnv::shared().expect("test environment");
    let (client, namespace) = env.prepare("traefik").await.expect("namespace");
    install_third_party_crds(&client)
        .await
        .expect("CRDs install");
    let ns = namespace.name();
    create_probe_route(&client, ns, json!([])).await;
    let (_traefik, web, log) = start_traefik(env, ns).await;
    let version: Value = probe_until(web, "/api/version", None, 200, &log)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        version["Version"],
        json!(pins::tool("traefik").expect("pinned").version),
        "{version}"
    );
}

/// First end-to-end slice of forward auth: Traefik's forwardAuth middleware in front of the
/// route asks the authentik double's outpost, so a request without a session is redirected to
/// sign in, a skipped path passes, and after the sign-in round trip the request gets through.
#[tokio::test]
async fn traefik_forward_auth_to_the_double_lets_only_signed_in_requests_through() {
    use authentik_double::{AuthentikDouble, DoubleConfig};

    let env = TestEnv::shared().expect("test environment");
    let (client, namespace) = env.prepare("traefik-fa").await.expect("namespace");
    install_third_party_crds(&client)
        .await
        .expect("CRDs install");
    let ns = namespace.name();
    let double = AuthentikDouble::start(DoubleConfig::default())
        .await
        .expect("double starts");
    let http = http();
    let api = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{}{path}", double.api_url()))
            .bearer_auth(double.token())
    };
    let provider: Value = api(reqwest::Method::POST, "/providers/proxy/")
        .json(&json!({
            "name": "probe",
            "authorization_flow": double.flow_pk("default-provider-authorization-implicit-consent"),
            "invalidation_flow": double.flow_pk("default-provider-invalidation-flow"),
            "external_host": "https://probe.example.com",
            "mode": "forward_single",
            "skip_path_regex": "^/api/overview$",
        }))
        .send()
        .await
        .expect("provider")
        .json()
        .await
        .expect("provider JSON");
    let app = api(reqwest::Method::POST, "/core/applications/")
        .json(&json!({"name": "probe", "slug": "probe", "provider": provider["pk"]}))
        .send()
        .await
        .expect("application");
    assert_eq!(app.status(), 201);
    let outpost = double.embedded_outpost_uuid();
    let assigned = api(
        reqwest::Method::PATCH,
        &format!("/outposts/instances/{outpost}/"),
    )
    .json(&json!({"providers": [provider["pk"]]}))
    .send()
    .await
    .expect("outpost");
    assert_eq!(assigned.status(), 200);

    let middleware = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("traefik.io", "v1alpha1", "Middleware"),
        "middlewares",
    );
    let forward_auth = DynamicObject::new("authentik", &middleware).data(json!({"spec": {
        "forwardAuth": {
            "address": format!("{}/outpost.goauthentik.io/auth/traefik", double.base_url()),
            "trustForwardHeader": true,
            "authResponseHeaders": ["X-authentik-username", "X-authentik-groups", "X-authentik-uid"],
        },
    }}));
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &middleware)
        .create(&PostParams::default(), &forward_auth)
        .await
        .expect("Middleware created");
    create_probe_route(&client, ns, json!([{"name": "authentik"}])).await;
    let (_traefik, web, log) = start_traefik(env, ns).await;

    // Without a session: the double's redirect to its authorize page, with the proxy cookie.
    let first = probe_until(web, "/api/version", None, 302, &log).await;
    let location = first.headers()["location"].to_str().expect("location");
    assert!(
        location.starts_with(&format!("{}/application/o/authorize/", double.base_url())),
        "{location}"
    );
    let proxy_cookie = first.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    assert!(
        proxy_cookie.starts_with("authentik_proxy_"),
        "{proxy_cookie}"
    );

    // The skipped path passes without one.
    probe_until(web, "/api/overview", None, 200, &log).await;

    // Sign in, let core authorize, hand the callback to the outpost through Traefik.
    let signed_in: Value = http
        .post(format!("{}/_double/sign-in", double.base_url()))
        .json(&json!({"username": "alice"}))
        .send()
        .await
        .expect("sign-in")
        .json()
        .await
        .expect("sign-in JSON");
    let authorized = http
        .get(location)
        .header("Cookie", signed_in["cookie"].as_str().expect("cookie"))
        .send()
        .await
        .expect("authorize");
    assert_eq!(authorized.status(), 302);
    let callback = url::Url::parse(authorized.headers()["location"].to_str().expect("callback"))
        .expect("callback URL");
    let callback_path = format!(
        "{}?{}",
        callback.path(),
        callback.query().unwrap_or_default()
    );
    let back = probe_until(web, &callback_path, Some(&proxy_cookie), 302, &log).await;
    assert_eq!(
        back.headers()["location"],
        "http://probe.example.com/api/version"
    );
    probe_until(web, "/api/version", Some(&proxy_cookie), 200, &log).await;
}
