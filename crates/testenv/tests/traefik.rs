//! The pinned Traefik builds from its Go module and runs as a process against the test API
//! server with its Kubernetes CRD provider: an IngressRoute created in the API server becomes a
//! route Traefik serves.

use gitops_testenv::images::read_archive;
use gitops_testenv::{TestEnv, Traefik, TraefikWeb, install_third_party_crds, pins};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

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

/// Builds (once) and starts Traefik watching `ns`.
async fn start_traefik(env: &'static TestEnv, ns: &str) -> Traefik {
    let ns = ns.to_owned();
    tokio::task::spawn_blocking(move || Traefik::start(env, &ns))
        .await
        .expect("start task")
        .expect("traefik starts")
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
    traefik: &Traefik,
    path: &str,
    cookie: Option<&str>,
    status: u16,
) -> reqwest::Response {
    let mut headers = vec![("Host", "probe.example.com")];
    headers.extend(cookie.map(|c| ("Cookie", c)));
    traefik
        .get_until(path, &headers, status)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The image the node runs Traefik from (`TraefikPod`): built from the pinned binary (static,
/// or the build refuses it) and named by the pinned version in its archive.
#[test]
fn the_traefik_image_names_the_pinned_version() {
    let image = gitops_testenv::traefik_image().expect("image built");
    let archived = read_archive(&image.archive).expect("an OCI archive");
    let version = &pins::tool("traefik").expect("pinned").version;
    assert_eq!(archived.reference, image.reference);
    assert!(
        image.reference.ends_with(&format!(":v{version}")),
        "{}",
        image.reference
    );
    assert!(archived.digest.starts_with("sha256:"), "{archived:?}");
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
    let traefik = start_traefik(env, ns).await;
    let version: Value = probe_until(&traefik, "/api/version", None, 200)
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
    let traefik = start_traefik(env, ns).await;

    // Without a session: the double's redirect to its authorize page, with the proxy cookie.
    let first = probe_until(&traefik, "/api/version", None, 302).await;
    let location = first.headers()["location"].to_str().expect("location");
    assert!(
        location.starts_with(&format!("{}/application/o/authorize/", double.base_url())),
        "{location}"
    );
    let proxy_cookie = gitops_testenv::set_cookie(&first).expect("the outpost's cookie");
    assert!(
        proxy_cookie.starts_with("authentik_proxy_"),
        "{proxy_cookie}"
    );

    // The skipped path passes without one.
    probe_until(&traefik, "/api/overview", None, 200).await;

    // Sign in, let core authorize, hand the callback to the outpost through Traefik.
    let signed_in = gitops_testenv::sign_in(&http, &double.base_url(), "alice", &[]).await;
    let authorized = http
        .get(location)
        .header("Cookie", signed_in)
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
    let back = probe_until(&traefik, &callback_path, Some(&proxy_cookie), 302).await;
    assert_eq!(
        back.headers()["location"],
        "http://probe.example.com/api/version"
    );
    probe_until(&traefik, "/api/version", Some(&proxy_cookie), 200).await;
}
