//! Forward auth through a real Traefik: a backend that records what reaches it, and the whole
//! request path a signed-out visitor, a skipped path, an outsider and a member take, checked the
//! same way whether Traefik runs as a test process or as a Pod on the node.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Uri};
use gitops_testenv::TraefikWeb;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

/// A backend that records every request Traefik forwards to it.
#[derive(Debug, Clone, Default)]
pub struct RecordingBackend {
    seen: Arc<Mutex<Vec<(String, HeaderMap)>>>,
}

impl RecordingBackend {
    /// Serves on a free port of `ip` (loopback for a Traefik process, the node's address for a
    /// Traefik Pod) for the rest of the test; returns the address.
    pub async fn start(&self, ip: IpAddr) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .unwrap_or_else(|error| panic!("a port on {ip}: {error}"));
        let address = listener.local_addr().expect("address");
        let seen = self.seen.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .expect("not poisoned")
                    .push((uri.path().to_owned(), headers));
                "the backend"
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        address
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.seen.lock().expect("not poisoned").len()
    }

    /// The path and headers of the last request that arrived.
    pub fn last(&self) -> (String, HeaderMap) {
        self.seen
            .lock()
            .expect("not poisoned")
            .last()
            .cloned()
            .expect("a request reached the backend")
    }
}

/// The `X-authentik-*` headers a request carried, lower-cased name → value.
pub fn identity_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-authentik-"))
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or("<not text>");
            (name.as_str().to_owned(), value.to_owned())
        })
        .collect()
}

/// Creates group `name` in the authentik double at `api_url` (`…/api/v3`).
pub async fn create_group(api_url: &str, token: &str, name: &str) {
    let created = reqwest::Client::new()
        .post(format!("{api_url}/core/groups/"))
        .bearer_auth(token)
        .json(&json!({"name": name}))
        .send()
        .await
        .expect("group");
    assert_eq!(created.status(), 201, "group {name} created");
}

/// Creates IngressRoute `host` → Service `service:port` on Traefik's `web` entry point, through
/// Middleware `middleware`, in `namespace` (named after the host's first label).
pub async fn create_guarded_route(
    client: &Client,
    namespace: &str,
    host: &str,
    middleware: &str,
    service: &str,
    port: u16,
) {
    let ingress_routes = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("traefik.io", "v1alpha1", "IngressRoute"),
        "ingressroutes",
    );
    let name = host.split('.').next().unwrap_or(host);
    let route = DynamicObject::new(name, &ingress_routes).data(json!({"spec": {
        "entryPoints": ["web"],
        "routes": [{
            "match": format!("Host(`{host}`)"),
            "kind": "Rule",
            "middlewares": [{"name": middleware}],
            "services": [{"name": service, "port": port}],
        }],
    }}));
    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &ingress_routes)
        .create(&PostParams::default(), &route)
        .await
        .unwrap_or_else(|error| panic!("IngressRoute {namespace}/{name}: {error}"));
}

/// What [`only_signed_in_members_reach_the_backend`] sends requests through.
#[derive(Debug)]
pub struct ProtectedRoute<'a, T: TraefikWeb> {
    pub traefik: &'a T,
    /// The route's host (the ProxyConfig's externalHost).
    pub host: &'a str,
    /// The only backend behind the route.
    pub backend: &'a RecordingBackend,
    /// The authentik double's base URL (`http://host:port`): its authorize page and sign-in.
    pub authentik: &'a str,
    /// The ProxyConfig's only allowed group.
    pub group: &'a str,
    /// A path under the ProxyConfig's skipPathRegex.
    pub skipped_path: &'a str,
}

/// The request path a user takes through Traefik and the ProxyConfig's Middleware, with the
/// backend counting what reaches it: without a session a request is sent to sign in and never
/// reaches the backend; the skipped path reaches it without identity headers; someone outside
/// the allowed group never reaches it; after a member signs in the request reaches it with the
/// outpost's identity headers. Every request claims an identity of its own (forged
/// `X-authentik-*` headers): only the outpost's may reach the backend.
pub async fn only_signed_in_members_reach_the_backend<T: TraefikWeb>(route: ProtectedRoute<'_, T>) {
    let ProtectedRoute {
        traefik,
        host,
        backend,
        authentik,
        group,
        skipped_path,
    } = route;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let get = |path: String, cookie: Option<String>, status: u16| async move {
        let mut headers = vec![
            ("Host", host),
            ("X-authentik-username", "forged"),
            ("X-authentik-groups", "forged"),
        ];
        headers.extend(cookie.as_deref().map(|c| ("Cookie", c)));
        traefik.get_until(&path, &headers, status).await
    };
    let before = backend.count();

    // No session: the outpost's redirect to sign in; the backend is not reached.
    let first = get("/app".into(), None, 302)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.count(), before, "reached without a session");
    let location = first.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(
        location.starts_with(&format!("{authentik}/application/o/authorize/")),
        "{location}"
    );
    let proxy_cookie = gitops_testenv::set_cookie(&first).expect("the outpost's cookie");

    // The skipped path passes without a session and reaches the backend, with no identity
    // (the forged ones are dropped too).
    let skipped = get(skipped_path.into(), None, 200)
        .await
        .expect("skipped path");
    assert_eq!(skipped.text().await.expect("body"), "the backend");
    assert_eq!(backend.count(), before + 1);
    let (path, headers) = backend.last();
    assert_eq!(path, skipped_path);
    assert_eq!(identity_headers(&headers), Vec::new());

    // Someone outside the group is stopped at authentik's authorize page: no callback, so no
    // session, so Traefik keeps redirecting and the backend never sees them.
    let outsider = gitops_testenv::sign_in(&http, authentik, "mallory", &[]).await;
    let denied = http
        .get(&location)
        .header("Cookie", &outsider)
        .send()
        .await
        .expect("authorize");
    assert_eq!(denied.status(), 200);
    assert!(
        denied
            .text()
            .await
            .expect("page")
            .contains("Permission denied"),
        "the authorize page refuses"
    );
    get("/app".into(), Some(proxy_cookie.clone()), 302)
        .await
        .expect("still redirected");
    assert_eq!(
        backend.count(),
        before + 1,
        "an outsider reached the backend"
    );

    // A member signs in, core authorizes, the callback goes to the outpost through Traefik.
    let member = gitops_testenv::sign_in(&http, authentik, "alice", &[group]).await;
    let authorized = http
        .get(&location)
        .header("Cookie", member)
        .send()
        .await
        .expect("authorize");
    assert_eq!(authorized.status(), 302);
    let callback =
        reqwest::Url::parse(authorized.headers()["location"].to_str().expect("callback"))
            .expect("callback URL");
    let callback_path = format!(
        "{}?{}",
        callback.path(),
        callback.query().unwrap_or_default()
    );
    get(callback_path, Some(proxy_cookie.clone()), 302)
        .await
        .expect("callback");
    assert_eq!(backend.count(), before + 1, "the callback is the outpost's");

    let through = get("/app".into(), Some(proxy_cookie), 200)
        .await
        .expect("signed in, the request gets through");
    assert_eq!(through.text().await.expect("body"), "the backend");
    assert_eq!(backend.count(), before + 2);
    let (path, headers) = backend.last();
    assert_eq!(path, "/app");
    let identity = identity_headers(&headers);
    let value = |name: &str| {
        identity
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(value("x-authentik-username"), Some("alice"), "{identity:?}");
    assert_eq!(value("x-authentik-groups"), Some(group), "{identity:?}");
    for name in [
        "x-authentik-email",
        "x-authentik-uid",
        "x-authentik-jwt",
        "x-authentik-meta-app",
    ] {
        assert!(
            value(name).is_some_and(|v| !v.is_empty()),
            "{name} missing: {identity:?}"
        );
    }
}
