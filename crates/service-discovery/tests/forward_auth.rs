//! `spec.forwardAuth`: the Traefik Middleware and the HTTPRoute ExternalAuth filter the
//! controller keeps for a ProxyConfig, against a real API server (with Traefik's and Gateway
//! API's CRDs and kube-controller-manager's garbage collector) and the authentik double.

mod common;

use common::forward_auth::{
    ProtectedRoute, RecordingBackend, create_group, only_signed_in_members_reach_the_backend,
};
use common::{Harness, RESYNCS, condition, skip_in_contract_mode};
use gitops_crd::Phase;
use gitops_crd::names::PROXYCONFIG_LABEL;
use gitops_crd::names::condition_types::FORWARD_AUTH_READY;
use gitops_plan::forward_auth::{
    AUTH_RESPONSE_HEADERS, ENVOY_AUTH_PATH, TRAEFIK_AUTH_PATH, extension_ref_filter,
    external_auth_filter, outpost_service,
};
use gitops_proxy_crds::gateway_httproute::HttpRoute;
use gitops_proxy_crds::traefik_middleware::Middleware;
use gitops_testenv::{Traefik, TraefikWeb};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::net::Ipv4Addr;

async fn harness(purpose: &str) -> Harness {
    let h = common::harness(purpose).await;
    gitops_testenv::install_third_party_crds(&h.client)
        .await
        .expect("Traefik's CRDs install");
    h
}

fn middlewares(h: &Harness) -> Api<Middleware> {
    Api::namespaced(h.client.clone(), h.namespace())
}

fn with_forward_auth(h: &Harness, name: &str, forward_auth: Value) -> Value {
    let mut manifest = h.proxyconfig(name);
    manifest["spec"]["forwardAuth"] = forward_auth;
    manifest
}

fn address(middleware: &Middleware) -> Option<String> {
    middleware.spec.forward_auth.as_ref()?.address.clone()
}

async fn wait_middleware(
    h: &Harness,
    name: &str,
    check: impl Fn(&Middleware) -> bool,
) -> Middleware {
    let api = middlewares(h);
    h.wait_until(&format!("Middleware {name}"), || async {
        api.get_opt(name).await.ok().flatten().filter(|m| check(m))
    })
    .await
}

async fn wait_middleware_gone(h: &Harness, name: &str) {
    let api = middlewares(h);
    h.wait_until(&format!("Middleware {name} to be deleted"), || async {
        matches!(api.get_opt(name).await, Ok(None)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn middleware_is_created_reverted_renamed_and_removed_with_its_proxyconfig() {
    let mut h = harness("fa-middleware").await;
    h.create_service("web", 80).await;
    let controller = h.start_single();
    h.apply(with_forward_auth(&h, "web", json!({"traefik": {}})))
        .await;
    let pc = h.wait_phase("web", Phase::Ready).await;
    let ready = condition(&pc, FORWARD_AUTH_READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "ForwardAuthWired"),
        "{ready:?}"
    );

    let want = format!(
        "{}{TRAEFIK_AUTH_PATH}",
        h.authentik.base_url().trim_end_matches('/')
    );
    let created = wait_middleware(&h, "web-authentik", |_| true).await;
    let forward_auth = created.spec.forward_auth.clone().expect("forwardAuth");
    assert_eq!(forward_auth.address.as_deref(), Some(want.as_str()));
    assert_eq!(forward_auth.trust_forward_header, Some(true));
    assert_eq!(
        forward_auth.auth_response_headers,
        Some(AUTH_RESPONSE_HEADERS.map(str::to_owned).to_vec())
    );
    let owner = &created.owner_references()[0];
    assert_eq!(owner.uid, pc.uid().expect("uid"));
    assert_eq!(owner.controller, Some(true));

    // Converged: resyncs read it but never write it.
    let resyncs = h.metric(controller, RESYNCS).await.unwrap_or_default();
    h.wait_metric(controller, RESYNCS, resyncs + 2.0).await;
    let unchanged = middlewares(&h).get("web-authentik").await.expect("get");
    assert_eq!(unchanged.resource_version(), created.resource_version());

    // A hand edit is reverted.
    middlewares(&h)
        .patch(
            "web-authentik",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"forwardAuth": {"address": "http://elsewhere/auth"}}})),
        )
        .await
        .expect("hand edit");
    wait_middleware(&h, "web-authentik", |m| {
        address(m).as_deref() == Some(want.as_str())
    })
    .await;

    // A new name: the new Middleware is created and the old one removed.
    h.apply(with_forward_auth(
        &h,
        "web",
        json!({"traefik": {"middlewareName": "web-sso"}}),
    ))
    .await;
    wait_middleware(&h, "web-sso", |_| true).await;
    wait_middleware_gone(&h, "web-authentik").await;

    // Deleting the ProxyConfig deletes what it owned (garbage collection by owner) and
    // nothing else: another Middleware in the namespace stays as it was.
    let neighbour: Middleware = serde_json::from_value(json!({
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": "web-headers"},
        "spec": {"headers": {"customRequestHeaders": {"X-Team": "web"}}},
    }))
    .expect("Middleware");
    let neighbour = middlewares(&h)
        .create(&PostParams::default(), &neighbour)
        .await
        .expect("created by hand");
    h.delete("web").await;
    h.wait_gone("web").await;
    wait_middleware_gone(&h, "web-sso").await;
    let kept = middlewares(&h)
        .get("web-headers")
        .await
        .expect("the other Middleware stays");
    assert_eq!(kept.resource_version(), neighbour.resource_version());
}

#[tokio::test]
async fn removing_forward_auth_removes_the_middleware_and_its_condition() {
    let mut h = harness("fa-removed").await;
    h.create_service("web", 80).await;
    h.start_single();
    h.apply(with_forward_auth(&h, "web", json!({"traefik": {}})))
        .await;
    h.wait_phase("web", Phase::Ready).await;
    wait_middleware(&h, "web-authentik", |_| true).await;

    h.apply(h.proxyconfig("web")).await;
    wait_middleware_gone(&h, "web-authentik").await;
    let pc = h
        .wait_until("the ForwardAuthReady condition to go", || async {
            let pc = h.get("web").await?;
            let status = pc.status.as_ref()?;
            (status.observed_generation == pc.metadata.generation
                && status
                    .conditions
                    .iter()
                    .all(|c| c.type_ != FORWARD_AUTH_READY))
            .then_some(pc)
        })
        .await;
    assert_eq!(pc.status.and_then(|s| s.phase), Some(Phase::Ready));
}

/// A Middleware `web-authentik` created by hand, forwarding elsewhere.
async fn create_foreign_middleware(h: &Harness) -> Middleware {
    let foreign: Middleware = serde_json::from_value(json!({
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": "web-authentik"},
        "spec": {"forwardAuth": {"address": "http://someone-elses-auth/check"}},
    }))
    .expect("Middleware");
    middlewares(h)
        .create(&PostParams::default(), &foreign)
        .await
        .expect("created by hand")
}

#[tokio::test]
async fn a_middleware_the_product_did_not_create_is_never_overwritten_or_deleted() {
    let mut h = harness("fa-foreign").await;
    h.create_service("web", 80).await;
    let foreign = create_foreign_middleware(&h).await;
    h.start_single();
    h.apply(with_forward_auth(&h, "web", json!({"traefik": {}})))
        .await;

    let pc = h.wait_phase("web", Phase::Failed).await;
    let wiring = condition(&pc, FORWARD_AUTH_READY);
    assert_eq!(
        (wiring.status.as_str(), wiring.reason.as_str()),
        ("False", "MiddlewareNotOurs"),
        "{wiring:?}"
    );
    assert!(
        wiring
            .message
            .contains(&format!("{}/web-authentik", h.namespace())),
        "{wiring:?}"
    );
    // authentik's half is done all the same.
    assert_eq!(
        h.authentik
            .providers_named(&h.provider_name("web"))
            .await
            .len(),
        1
    );
    let event = h
        .wait_until("a Warning Event naming the problem", || async {
            let events: Api<k8s_openapi::api::events::v1::Event> =
                Api::namespaced(h.client.clone(), h.namespace());
            events
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.note
                            .as_deref()
                            .is_some_and(|n| n.contains("MiddlewareNotOurs"))
                })
        })
        .await;
    assert!(
        event
            .note
            .as_deref()
            .is_some_and(|n| n.contains("web-authentik")),
        "{event:?}"
    );

    h.delete("web").await;
    h.wait_gone("web").await;
    let kept = middlewares(&h)
        .get("web-authentik")
        .await
        .expect("still there");
    assert_eq!(kept.resource_version(), foreign.resource_version());
    assert_eq!(
        address(&kept).as_deref(),
        Some("http://someone-elses-auth/check")
    );
}

#[tokio::test]
async fn forward_auth_in_proxy_mode_is_refused_without_writing_anything() {
    let mut h = harness("fa-proxy-mode").await;
    h.create_service("web", 80).await;
    h.start_single();
    let mut manifest = with_forward_auth(&h, "web", json!({"traefik": {}}));
    manifest["spec"]["authentikConfig"]["mode"] = json!("proxy");
    h.apply(manifest).await;
    let pc = h.wait_phase("web", Phase::Failed).await;
    let wiring = condition(&pc, FORWARD_AUTH_READY);
    assert_eq!(wiring.reason, "ModeWithoutForwardAuth", "{wiring:?}");
    let listed = middlewares(&h)
        .list(&Default::default())
        .await
        .expect("list");
    assert!(listed.items.is_empty(), "{:?}", listed.items);
}

/// The outpost as an in-cluster Service address (an ExternalAuth filter's backendRef).
const OUTPOST_SERVICE_URL: &str = "http://authentik-server.authentik.svc.cluster.local:9000";

/// Starts the controller with the outpost at [`OUTPOST_SERVICE_URL`]; returns its index.
fn start_with_service_outpost(h: &mut Harness) -> usize {
    h.start_controller(&[
        "--leader-election",
        "false",
        "--forward-auth-outpost-url",
        OUTPOST_SERVICE_URL,
    ])
}

fn routes(h: &Harness) -> Api<HttpRoute> {
    Api::namespaced(h.client.clone(), h.namespace())
}

/// Creates HTTPRoute `name` on the test's Gateway (`gateway`) for the test's host.
async fn create_http_route(h: &Harness, name: &str, rules: Value) -> HttpRoute {
    let route: HttpRoute = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "gateway"}],
            "hostnames": [format!("web.{}.example.com", h.namespace())],
            "rules": rules,
        },
    }))
    .expect("HTTPRoute");
    routes(h)
        .create(&PostParams::default(), &route)
        .await
        .expect("HTTPRoute created")
}

/// An HTTPRoute `name` with two rules to Service `web`, the first with `first_rule_filters`.
async fn create_route(h: &Harness, name: &str, first_rule_filters: Value) -> HttpRoute {
    create_http_route(
        h,
        name,
        json!([
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/app"}}],
                "filters": first_rule_filters,
                "backendRefs": [{"name": "web", "port": 80}],
            },
            {"backendRefs": [{"name": "web", "port": 80}]},
        ]),
    )
    .await
}

fn external_auth_count(route: &HttpRoute) -> Vec<usize> {
    route
        .spec
        .rules
        .iter()
        .flatten()
        .map(|rule| {
            rule.filters
                .iter()
                .flatten()
                .filter(|f| f.external_auth.is_some())
                .count()
        })
        .collect()
}

async fn wait_route(h: &Harness, name: &str, check: impl Fn(&HttpRoute) -> bool) -> HttpRoute {
    let api = routes(h);
    h.wait_until(&format!("HTTPRoute {name}"), || async {
        api.get_opt(name).await.ok().flatten().filter(|r| check(r))
    })
    .await
}

#[tokio::test]
async fn http_route_rules_get_the_external_auth_filter_until_the_proxyconfig_goes() {
    let mut h = harness("fa-httproute").await;
    h.create_service("web", 80).await;
    let header = json!([{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "X-Team", "value": "web"}]}}]);
    create_route(&h, "web", header.clone()).await;
    let controller = start_with_service_outpost(&mut h);
    h.apply(with_forward_auth(
        &h,
        "web",
        json!({"httpRoute": {"name": "web"}}),
    ))
    .await;
    let pc = h.wait_phase("web", Phase::Ready).await;
    let wired = condition(&pc, FORWARD_AUTH_READY);
    assert!(
        wired.message.contains("authentik/authentik-server"),
        "{wired:?}"
    );

    let filter = external_auth_filter(&outpost_service(OUTPOST_SERVICE_URL).expect("Service"));
    let route = wait_route(&h, "web", |r| external_auth_count(r) == [1, 1]).await;
    for rule in route.spec.rules.iter().flatten() {
        assert_eq!(rule.filters.as_ref().expect("filters")[0], filter);
    }
    let auth = serde_json::to_value(&filter).expect("JSON");
    assert_eq!(auth["externalAuth"]["http"]["path"], ENVOY_AUTH_PATH);
    assert_eq!(route.labels()[PROXYCONFIG_LABEL], "web");
    assert_eq!(
        route.spec.rules.as_ref().expect("rules")[0]
            .filters
            .as_ref()
            .expect("filters")
            .len(),
        2,
        "the route's own filter stays"
    );

    // Converged: the API server's defaults compare equal, so resyncs write nothing.
    let resyncs = h.metric(controller, RESYNCS).await.unwrap_or_default();
    h.wait_metric(controller, RESYNCS, resyncs + 2.0).await;
    let unchanged = routes(&h).get("web").await.expect("get");
    assert_eq!(unchanged.resource_version(), route.resource_version());

    // A hand edit that drops the filter is reverted.
    let mut edited = route.clone();
    if let Some(rules) = edited.spec.rules.as_mut() {
        rules[1].filters = None;
    }
    routes(&h)
        .replace("web", &PostParams::default(), &edited)
        .await
        .expect("hand edit");
    wait_route(&h, "web", |r| {
        external_auth_count(r) == [1, 1] && r.resource_version() != edited.resource_version()
    })
    .await;

    // Deleting the ProxyConfig takes the filters out again; the route itself stays.
    h.delete("web").await;
    h.wait_gone("web").await;
    let unwired = routes(&h).get("web").await.expect("the route stays");
    assert_eq!(external_auth_count(&unwired), [0, 0]);
    assert!(!unwired.labels().contains_key(PROXYCONFIG_LABEL));
    let first = serde_json::to_value(&unwired.spec.rules.expect("rules")[0].filters).expect("JSON");
    assert_eq!(
        first[0]["requestHeaderModifier"],
        header[0]["requestHeaderModifier"]
    );
}

#[tokio::test]
async fn http_route_problems_are_reported_and_nothing_is_written() {
    let mut h = harness("fa-httproute-bad").await;
    h.create_service("web", 80).await;
    let foreign = json!([{"type": "ExternalAuth", "externalAuth": {
        "protocol": "HTTP",
        "backendRef": {"name": "someone-elses-auth", "port": 8080},
        "http": {"path": "/check"},
    }}]);
    let taken = create_route(&h, "taken", foreign).await;
    start_with_service_outpost(&mut h);

    h.apply(with_forward_auth(
        &h,
        "web",
        json!({"httpRoute": {"name": "missing"}}),
    ))
    .await;
    let pc = h.wait_phase("web", Phase::Failed).await;
    assert_eq!(condition(&pc, FORWARD_AUTH_READY).reason, "RouteNotFound");

    h.apply(with_forward_auth(
        &h,
        "web",
        json!({"httpRoute": {"name": "taken"}}),
    ))
    .await;
    let pc = h.wait_phase("web", Phase::Failed).await;
    let refused = condition(&pc, FORWARD_AUTH_READY);
    assert_eq!(refused.reason, "RouteHasOtherExternalAuth", "{refused:?}");
    assert!(refused.message.contains("/taken"), "{refused:?}");

    h.delete("web").await;
    h.wait_gone("web").await;
    let kept = routes(&h).get("taken").await.expect("still there");
    assert_eq!(kept.resource_version(), taken.resource_version());
}

/// ExtensionRef wiring whose Middleware cannot be kept (one of that name was not made by the
/// product) writes nothing to the route; a missing route is reported.
#[tokio::test]
async fn extension_ref_problems_are_reported_and_the_route_is_left_alone() {
    let mut h = harness("fa-extref-bad").await;
    h.create_service("web", 80).await;
    let route = create_route(&h, "web", json!([])).await;
    create_foreign_middleware(&h).await;
    h.start_single();
    h.apply(with_forward_auth(
        &h,
        "web",
        json!({"traefik": {}, "httpRoute": {"name": "web", "filter": "ExtensionRef"}}),
    ))
    .await;
    let pc = h.wait_phase("web", Phase::Failed).await;
    assert_eq!(
        condition(&pc, FORWARD_AUTH_READY).reason,
        "MiddlewareNotOurs"
    );
    let unchanged = routes(&h).get("web").await.expect("route");
    assert_eq!(unchanged.resource_version(), route.resource_version());

    h.apply(with_forward_auth(
        &h,
        "web",
        json!({"traefik": {"middlewareName": "web-sso"}, "httpRoute": {"name": "missing", "filter": "ExtensionRef"}}),
    ))
    .await;
    h.wait_until("RouteNotFound", || async {
        let pc = h.get("web").await?;
        (condition(&pc, FORWARD_AUTH_READY).reason == "RouteNotFound").then_some(())
    })
    .await;
    let unchanged = routes(&h).get("web").await.expect("route");
    assert_eq!(unchanged.resource_version(), route.resource_version());
}

#[tokio::test]
async fn an_outpost_address_that_is_no_service_cannot_back_an_http_route_filter() {
    // The harness's outpost is the double on a loopback address.
    let mut h = harness("fa-httproute-url").await;
    h.create_service("web", 80).await;
    let route = create_route(&h, "web", json!([])).await;
    h.start_single();
    h.apply(with_forward_auth(
        &h,
        "web",
        json!({"httpRoute": {"name": "web"}}),
    ))
    .await;
    let pc = h.wait_phase("web", Phase::Failed).await;
    let refused = condition(&pc, FORWARD_AUTH_READY);
    assert_eq!(refused.reason, "OutpostNotAService", "{refused:?}");
    assert!(
        refused.message.contains("FORWARD_AUTH_OUTPOST_URL"),
        "{refused:?}"
    );
    let unchanged = routes(&h).get("web").await.expect("route");
    assert_eq!(unchanged.resource_version(), route.resource_version());
}

/// Creates Traefik IngressRoute `name` on the `web` entry point whose one route matches the
/// test's host and goes to `service` (name, port) through `middlewares`.
async fn create_ingress_route(h: &Harness, name: &str, middlewares: &[&str], service: (&str, u16)) {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

    let ingress_routes = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("traefik.io", "v1alpha1", "IngressRoute"),
        "ingressroutes",
    );
    let middlewares: Vec<Value> = middlewares.iter().map(|m| json!({"name": m})).collect();
    let route = DynamicObject::new(name, &ingress_routes).data(json!({"spec": {
        "entryPoints": ["web"],
        "routes": [{
            "match": format!("Host(`web.{}.example.com`)", h.namespace()),
            "kind": "Rule",
            "middlewares": middlewares,
            "services": [{"name": service.0, "port": service.1}],
        }],
    }}));
    Api::<DynamicObject>::namespaced_with(h.client.clone(), h.namespace(), &ingress_routes)
        .create(&PostParams::default(), &route)
        .await
        .expect("IngressRoute");
}

/// Waits until `name`'s Protected condition has `status`; returns its message.
async fn wait_protected(h: &Harness, name: &str, status: &str) -> String {
    h.wait_until(&format!("{name} Protected={status}"), || async {
        let pc = h.get(name).await?;
        let protected = pc
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == gitops_crd::names::condition_types::PROTECTED)?;
        (protected.status == status)
            .then_some(format!("{}: {}", protected.reason, protected.message))
    })
    .await
}

#[tokio::test]
async fn protected_follows_the_routes_serving_the_host_as_they_come_and_go() {
    use k8s_openapi::api::networking::v1::Ingress;
    use kube::api::DeleteParams;

    let mut h = harness("fa-protected").await;
    h.create_service("web", 80).await;
    // Resyncs an hour apart: every change below is noticed through the route watches.
    let controller = h.start_controller(&["--leader-election", "false", "--resync-interval", "1h"]);
    h.apply(with_forward_auth(&h, "web", json!({"traefik": {}})))
        .await;
    h.wait_phase("web", Phase::Ready).await;
    let host = format!("web.{}.example.com", h.namespace());
    assert!(
        wait_protected(&h, "web", "Unknown")
            .await
            .starts_with("NoRouteFound")
    );

    create_ingress_route(&h, "web", &["web-authentik"], ("web", 80)).await;
    let protected = wait_protected(&h, "web", "True").await;
    assert!(protected.contains("IngressRoute"), "{protected}");

    // A route added later without forward auth turns it False, naming the route.
    let exposed: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "web-direct"},
        "spec": {"rules": [{"host": host, "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}},
        }]}}]},
    }))
    .expect("Ingress");
    let ingresses: Api<Ingress> = Api::namespaced(h.client.clone(), h.namespace());
    ingresses
        .create(&PostParams::default(), &exposed)
        .await
        .expect("Ingress");
    let message = wait_protected(&h, "web", "False").await;
    assert!(message.starts_with("RouteWithoutForwardAuth"), "{message}");
    assert!(
        message.contains(&format!("Ingress {}/web-direct", h.namespace())),
        "{message}"
    );
    let series = format!(
        r#"gitops_proxyconfig_exposed{{namespace="{}",name="web"}}"#,
        h.namespace()
    );
    h.wait_metric(controller, &series, 1.0).await;

    // Protected again once that route names the Middleware.
    ingresses
        .patch(
            "web-direct",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "traefik.ingress.kubernetes.io/router.middlewares":
                    format!("{}-web-authentik@kubernetescrd", h.namespace()),
            }}})),
        )
        .await
        .expect("annotated");
    wait_protected(&h, "web", "True").await;
    assert_eq!(h.metric(controller, &series).await, Some(0.0));
    ingresses
        .delete("web-direct", &DeleteParams::default())
        .await
        .expect("deleted");
}

/// A group in authentik and a ProxyConfig `web` with `forward_auth`, allowing only that group
/// and skipping authentication under `/api/`; returns the group's name once it is Ready.
async fn guarded_proxyconfig(h: &Harness, forward_auth: Value) -> String {
    let group = format!("team-{}", h.namespace());
    create_group(&h.double().api_url(), h.double().token(), &group).await;
    let mut manifest = with_forward_auth(h, "web", forward_auth);
    manifest["spec"]["authentikConfig"]["skipPathRegex"] = json!("^/api/");
    manifest["spec"]["authentikConfig"]["allowedGroups"] = json!([group]);
    h.apply(manifest).await;
    h.wait_phase("web", Phase::Ready).await;
    group
}

/// Starts Traefik on the test's namespace.
async fn start_traefik(h: &Harness) -> Traefik {
    let (env, ns) = (h.env, h.namespace().to_owned());
    tokio::task::spawn_blocking(move || Traefik::start(env, &ns))
        .await
        .expect("start task")
        .expect("traefik starts")
}

/// [`only_signed_in_members_reach_the_backend`] for the test's host, whose route sends requests
/// to `backend` through the ProxyConfig of [`guarded_proxyconfig`] (the node test checks the
/// same through a Traefik Pod).
async fn only_signed_in_requests_reach_the_backend(
    h: &Harness,
    traefik: &Traefik,
    backend: &RecordingBackend,
    group: &str,
) {
    let host = format!("web.{}.example.com", h.namespace());
    only_signed_in_members_reach_the_backend(ProtectedRoute {
        traefik,
        host: &host,
        backend,
        authentik: &h.double().base_url(),
        group,
        skipped_path: "/api/version",
    })
    .await;
}

/// The whole request path with a real proxy: Traefik (the pinned build, reading the test API
/// server) in front of an IngressRoute that names the Middleware the controller made for a
/// ProxyConfig, and a backend in this process that counts what reaches it.
#[tokio::test]
async fn traefik_with_the_controllers_middleware_lets_only_signed_in_requests_through() {
    if skip_in_contract_mode("its sign-in shortcut issues the outpost sessions") {
        return;
    }
    let mut h = harness("fa-traefik").await;
    h.create_service("web", 80).await;
    h.start_single();
    let group = guarded_proxyconfig(&h, json!({"traefik": {}})).await;

    // Without a node there are no Pods: Traefik reaches the backend on loopback through a
    // Service without selector.
    let backend = RecordingBackend::default();
    let loopback = Ipv4Addr::LOCALHOST.into();
    let backend_port = backend.start(loopback).await.port();
    gitops_testenv::backend_service(&h.client, h.namespace(), "backend", loopback, backend_port)
        .await
        .expect("backend Service");
    create_ingress_route(&h, "web", &["web-authentik"], ("backend", backend_port)).await;
    assert!(
        wait_protected(&h, "web", "True")
            .await
            .contains("IngressRoute")
    );

    let traefik = start_traefik(&h).await;
    only_signed_in_requests_reach_the_backend(&h, &traefik, &backend, &group).await;
}

/// The same request path through Traefik's Gateway API provider, which has no ExternalAuth
/// filter: the controller adds an ExtensionRef to its Middleware to every rule of the HTTPRoute
/// the ProxyConfig names. An HTTPRoute for the same host without it is reported (and really is
/// open).
#[tokio::test]
async fn traefiks_gateway_api_provider_with_the_extension_ref_lets_only_signed_in_requests_through()
{
    if skip_in_contract_mode("its sign-in shortcut issues the outpost sessions") {
        return;
    }
    let mut h = harness("fa-gateway").await;
    h.create_service("web", 80).await;
    let backend = RecordingBackend::default();
    let loopback = Ipv4Addr::LOCALHOST.into();
    let backend_port = backend.start(loopback).await.port();
    gitops_testenv::backend_service(&h.client, h.namespace(), "backend", loopback, backend_port)
        .await
        .expect("backend Service");
    let to_backend = json!({"name": "backend", "port": backend_port});
    create_http_route(&h, "web", json!([{"backendRefs": [to_backend]}])).await;
    h.start_single();
    let group = guarded_proxyconfig(
        &h,
        json!({"traefik": {}, "httpRoute": {"name": "web", "filter": "ExtensionRef"}}),
    )
    .await;
    let reference = extension_ref_filter("web-authentik");
    let wired = wait_route(&h, "web", |r| {
        r.spec
            .rules
            .iter()
            .flatten()
            .all(|rule| rule.filters.as_deref() == Some(std::slice::from_ref(&reference)))
    })
    .await;
    assert_eq!(wired.labels()[PROXYCONFIG_LABEL], "web");
    let protected = wait_protected(&h, "web", "True").await;
    assert!(
        protected.contains(&format!("HTTPRoute {}/web", h.namespace())),
        "{protected}"
    );

    let traefik = start_traefik(&h).await;
    traefik
        .create_gateway(&h.client, "gateway")
        .await
        .expect("Gateway");
    only_signed_in_requests_reach_the_backend(&h, &traefik, &backend, &group).await;

    // A route added later for the same host without the filter: Protected turns False naming
    // it, the status lists it (what `kubectl gitops verify` reports), and it is really open.
    create_http_route(
        &h,
        "web-direct",
        json!([{
            "matches": [{"path": {"type": "PathPrefix", "value": "/direct"}}],
            "backendRefs": [to_backend],
        }]),
    )
    .await;
    let exposed = format!("HTTPRoute {}/web-direct", h.namespace());
    let message = wait_protected(&h, "web", "False").await;
    assert!(message.contains(&exposed), "{message}");
    let pc = h.get("web").await.expect("ProxyConfig");
    assert_eq!(
        pc.status.expect("status").exposed_routes,
        vec![exposed.clone()]
    );
    let before = backend.count();
    let host = format!("web.{}.example.com", h.namespace());
    traefik
        .get_until("/direct", &[("Host", host.as_str())], 200)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(backend.count(), before + 1, "{exposed} reaches the backend");
}

#[tokio::test]
async fn an_outpost_that_does_not_answer_gets_no_middleware_pointing_at_it() {
    let mut h = harness("fa-unreachable").await;
    h.create_service("web", 80).await;
    // A loopback port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let outpost = format!("http://{closed}");
    h.start_controller(&[
        "--leader-election",
        "false",
        "--forward-auth-outpost-url",
        &outpost,
    ]);
    h.apply(with_forward_auth(&h, "web", json!({"traefik": {}})))
        .await;
    let pc = h.wait_phase("web", Phase::Pending).await;
    let wiring = condition(&pc, FORWARD_AUTH_READY);
    assert_eq!(wiring.reason, "OutpostUnreachable", "{wiring:?}");
    assert!(
        wiring
            .message
            .contains(&format!("{outpost}/outpost.goauthentik.io/ping")),
        "{wiring:?}"
    );
    let listed = middlewares(&h)
        .list(&Default::default())
        .await
        .expect("list");
    assert!(listed.items.is_empty(), "{:?}", listed.items);
}

/// Route CRDs installed while the controller runs are watched without a restart: routes
/// created afterwards count for Protected. On an API server of its own, since the shared one
/// has these CRDs already.
#[tokio::test]
async fn route_kinds_installed_after_the_start_are_watched_without_a_restart() {
    let mut h = Harness::with_private_environment(
        "fa-late-crds",
        env!("CARGO_BIN_EXE_gitops-service-discovery"),
    )
    .await;
    h.create_service("web", 80).await;
    // Resyncs an hour apart: only the watches can notice the routes.
    h.start_controller(&["--leader-election", "false", "--resync-interval", "1h"]);
    h.apply(h.proxyconfig("web")).await;
    h.wait_phase("web", Phase::Ready).await;
    assert!(
        wait_protected(&h, "web", "Unknown")
            .await
            .starts_with("NoRouteFound")
    );

    gitops_testenv::install_third_party_crds(&h.client)
        .await
        .expect("Traefik's and Gateway API's CRDs install");
    create_route(&h, "web", json!([])).await;
    let message = wait_protected(&h, "web", "False").await;
    assert!(
        message.contains(&format!("HTTPRoute {}/web", h.namespace())),
        "{message}"
    );
    create_ingress_route(&h, "web", &[], ("web", 80)).await;
    let both = format!(
        "HTTPRoute {ns}/web, IngressRoute {ns}/web serve",
        ns = h.namespace()
    );
    h.wait_until("the IngressRoute to be reported too", || async {
        let pc = h.get("web").await?;
        let status = pc.status?;
        status
            .conditions
            .iter()
            .any(|c| {
                c.type_ == gitops_crd::names::condition_types::PROTECTED
                    && c.message.contains(&both)
            })
            .then_some(())
    })
    .await;
}
