//! `spec.forwardAuth`: the Traefik Middleware the controller keeps for a ProxyConfig, against a
//! real API server (with Traefik's CRDs and kube-controller-manager's garbage collector) and
//! the authentik double.

mod common;

use common::{Harness, RESYNCS, condition};
use gitops_crd::Phase;
use gitops_crd::names::condition_types::FORWARD_AUTH_READY;
use gitops_plan::forward_auth::{AUTH_RESPONSE_HEADERS, TRAEFIK_AUTH_PATH};
use gitops_proxy_crds::traefik_middleware::Middleware;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

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
        ("True", "MiddlewareReady"),
        "{ready:?}"
    );

    let want = format!(
        "{}{TRAEFIK_AUTH_PATH}",
        h.double.base_url().trim_end_matches('/')
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

    // Deleting the ProxyConfig deletes what it owned (garbage collection by owner).
    h.delete("web").await;
    h.wait_gone("web").await;
    wait_middleware_gone(&h, "web-sso").await;
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

#[tokio::test]
async fn a_middleware_the_product_did_not_create_is_never_overwritten_or_deleted() {
    let mut h = harness("fa-foreign").await;
    h.create_service("web", 80).await;
    let foreign: Middleware = serde_json::from_value(json!({
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": "web-authentik"},
        "spec": {"forwardAuth": {"address": "http://someone-elses-auth/check"}},
    }))
    .expect("Middleware");
    let foreign = middlewares(&h)
        .create(&PostParams::default(), &foreign)
        .await
        .expect("created by hand");
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
    assert_eq!(h.providers_named(&h.provider_name("web")).len(), 1);
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
