//! After step 5, only for ProxyConfigs with `spec.forwardAuth`: the reverse proxy's half, a
//! Traefik `Middleware` and/or a Gateway API HTTPRoute filter (`ExternalAuth`, or an
//! `ExtensionRef` to that Middleware) sending each request to the outpost first. What they
//! should look like is decided in `gitops_plan::forward_auth`; this module reads and writes the
//! API server.
//!
//! Traffic: one GET per wired object per reconcile of such a ProxyConfig, a write only when it
//! differs; what was wired before is listed by label (to unwire renamed objects) only when the
//! spec changed or the wiring is released. ProxyConfigs that never had `forwardAuth` cost
//! nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use gitops_crd::conditions::{ConditionUpdate, find_condition};
use gitops_crd::names::{PROXYCONFIG_LABEL, SERVICE_DISCOVERY_MANAGER, condition_types};
use gitops_crd::{HttpRouteForwardAuth, ProxyConfig, RouteFilterKind, TraefikForwardAuth};
use gitops_plan::forward_auth::{
    MiddlewareAction, OwnFilters, WiringProblem, check_mode, desired_middleware,
    extension_ref_middleware, middleware_action, outpost_service, owned_by, route_filter,
    route_with_filter, route_without_filters, stale_middlewares, wanted_middleware,
};
use gitops_proxy_crds::gateway_httproute::HttpRoute;
use gitops_proxy_crds::traefik_middleware::Middleware;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Resource, ResourceExt};

use crate::context::Context;
use crate::error::Failure;
use crate::status::Report;

const STEP: &str = condition_types::FORWARD_AUTH_READY;

/// One kind's "served by the API server" answer. A yes is kept (a CRD is not uninstalled under
/// a running proxy); a no is asked again, so installing the CRDs later needs no restart.
#[derive(Debug, Default)]
pub struct Served(AtomicBool);

impl Served {
    pub async fn ask<K: Resource<DynamicType = ()>>(
        &self,
        client: &kube::Client,
    ) -> Result<bool, kube::Error> {
        if self.0.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let group_version = format!("{}/{}", K::group(&()), K::version(&()));
        let served = match client.list_api_group_resources(&group_version).await {
            Ok(list) => list.resources.iter().any(|r| r.name == K::plural(&())),
            Err(kube::Error::Api(status)) if status.code == 404 => false,
            Err(error) => return Err(error),
        };
        self.0.store(served, Ordering::Relaxed);
        Ok(served)
    }
}

/// Which reverse-proxy kinds the API server serves.
#[derive(Debug, Default)]
pub struct ServedKinds {
    pub middleware: Served,
    pub http_route: Served,
    pub ingress_route: Served,
}

/// Asks the outpost's `/outpost.goauthentik.io/ping` before wiring that points a proxy at it is
/// written: wiring to an outpost that does not answer would lock every user out. Only before a
/// write, so a converged ProxyConfig costs no request.
#[derive(Debug)]
pub struct OutpostProbe {
    http: reqwest::Client,
}

impl Default for OutpostProbe {
    fn default() -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }
}

impl OutpostProbe {
    async fn check(&self, outpost_url: &str) -> Result<(), Failure> {
        let url = format!("{outpost_url}/outpost.goauthentik.io/ping");
        let answer = self.http.get(&url).send().await;
        match answer {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(Failure::outpost_unreachable(
                &url,
                format!("it answered {}", response.status()),
            )),
            Err(error) => Err(Failure::outpost_unreachable(&url, error.to_string())),
        }
    }
}

/// The kinds `forwardAuth` can wire.
#[derive(Clone, Copy)]
enum Kind {
    Middleware,
    HttpRoute,
}

impl Kind {
    async fn served(self, ctx: &Context) -> Result<bool, Failure> {
        let kinds = &ctx.served_kinds;
        match self {
            Kind::Middleware => kinds.middleware.ask::<Middleware>(&ctx.client).await,
            Kind::HttpRoute => kinds.http_route.ask::<HttpRoute>(&ctx.client).await,
        }
        .map_err(api_failure)
    }

    /// Fails when the kind is not served: `forwardAuth` asks for it.
    async fn require(self, ctx: &Context) -> Result<(), Failure> {
        if self.served(ctx).await? {
            return Ok(());
        }
        Err(match self {
            Kind::Middleware => Failure::proxy_kind_not_installed(
                "Traefik Middleware (traefik.io/v1alpha1)",
                "Traefik's CRDs",
            ),
            Kind::HttpRoute => Failure::proxy_kind_not_installed(
                "Gateway API HTTPRoute (gateway.networking.k8s.io/v1)",
                "Gateway API's CRDs (the experimental channel for the ExternalAuth filter)",
            ),
        })
    }
}

/// Creates, corrects or removes the wiring `pc` asks for.
pub async fn converge(pc: &ProxyConfig, ctx: &Context, report: &mut Report) -> Result<(), Failure> {
    let Some(wanted) = pc.spec.forward_auth.as_ref() else {
        if had_wiring(pc) {
            release(pc, ctx, report).await?;
            report.forget(STEP);
        }
        return Ok(());
    };
    check_mode(pc.spec.authentik_config.mode).map_err(refused)?;
    // What was kept before the spec changed: its Middlewares go once no route of ours names
    // them any more.
    let kept = if spec_changed(pc) && (had_wiring(pc) || wanted.traefik.is_some()) {
        kept_middlewares(pc, ctx).await?
    } else {
        Vec::new()
    };
    let middleware = wanted_middleware(pc);
    let own = own_filters(ctx, &kept, middleware.as_deref());
    let mut wired = Vec::new();
    if let Some(traefik) = &wanted.traefik {
        wired.push(wire_middleware(pc, traefik, ctx, report).await?);
    }
    match &wanted.http_route {
        Some(route) => wired.push(wire_route(pc, route, ctx, &own, report).await?),
        None if had_wiring(pc) && spec_changed(pc) => {
            unwire_routes(pc, ctx, None, &own, report).await?
        }
        None => {}
    }
    remove_stale_middlewares(pc, ctx, &kept, middleware.as_deref(), report).await?;
    report.step(ConditionUpdate::new(
        STEP,
        true,
        "ForwardAuthWired",
        wired.join("; "),
    ));
    Ok(())
}

/// Removes what was wired for `pc` that garbage collection does not remove: the filters added
/// to routes it does not own (its Middlewares go with it by ownerReference, or now when
/// `forwardAuth` is removed).
pub async fn release(pc: &ProxyConfig, ctx: &Context, report: &mut Report) -> Result<(), Failure> {
    if !had_wiring(pc) && pc.spec.forward_auth.is_none() {
        return Ok(());
    }
    let routes_served = Kind::HttpRoute.served(ctx).await?;
    let deleting = pc.metadata.deletion_timestamp.is_some();
    if deleting && !routes_served {
        // Garbage collection removes the Middlewares; there is no route to unwire.
        return Ok(());
    }
    let kept = kept_middlewares(pc, ctx).await?;
    if routes_served {
        let own = own_filters(ctx, &kept, wanted_middleware(pc).as_deref());
        unwire_routes(pc, ctx, None, &own, report).await?;
    }
    if !deleting {
        remove_stale_middlewares(pc, ctx, &kept, None, report).await?;
    }
    Ok(())
}

async fn wire_middleware(
    pc: &ProxyConfig,
    traefik: &TraefikForwardAuth,
    ctx: &Context,
    report: &mut Report,
) -> Result<String, Failure> {
    let desired =
        desired_middleware(pc, traefik, &ctx.settings.forward_auth_outpost_url).map_err(refused)?;
    Kind::Middleware.require(ctx).await?;
    let namespace = pc.namespace().unwrap_or_default();
    let name = desired.name_any();
    let api: Api<Middleware> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = api.get_opt(&name).await.map_err(api_failure)?;
    let action = middleware_action(&desired, existing.as_ref()).map_err(refused)?;
    if action != MiddlewareAction::Keep {
        ctx.outpost_probe
            .check(&ctx.settings.forward_auth_outpost_url)
            .await?;
    }
    match action {
        MiddlewareAction::Keep => {}
        MiddlewareAction::Create => {
            api.create(&post_params(), &desired)
                .await
                .map_err(api_failure)?;
            report.event(
                "MiddlewareCreated",
                format!("created Traefik Middleware {namespace}/{name}"),
            );
        }
        // Replaced with the stored resourceVersion: a concurrent change makes it fail and the
        // next attempt decides afresh.
        MiddlewareAction::Update(updated) => {
            api.replace(&name, &post_params(), &updated)
                .await
                .map_err(api_failure)?;
            report.event(
                "MiddlewareUpdated",
                format!("reverted Traefik Middleware {namespace}/{name} to the spec"),
            );
        }
    }
    let address = desired
        .spec
        .forward_auth
        .and_then(|f| f.address)
        .unwrap_or_default();
    Ok(format!(
        "Traefik Middleware {namespace}/{name} sends requests to {address}; routes name it as {name} (IngressRoute, HTTPRoute ExtensionRef) or {namespace}-{name}@kubernetescrd (Ingress annotation)"
    ))
}

/// The Middlewares created for `pc` (listed by label; none when Traefik's CRDs are not served).
async fn kept_middlewares(pc: &ProxyConfig, ctx: &Context) -> Result<Vec<Middleware>, Failure> {
    if !Kind::Middleware.served(ctx).await? {
        return Ok(Vec::new());
    }
    let api: Api<Middleware> =
        Api::namespaced(ctx.client.clone(), &pc.namespace().unwrap_or_default());
    let listed = api.list(&wired_for(pc)).await.map_err(api_failure)?;
    let uid = pc.uid().unwrap_or_default();
    Ok(listed
        .items
        .into_iter()
        .filter(|m| owned_by(m, &uid))
        .collect())
}

/// The filters `pc` may have added to routes: ExternalAuth to the outpost's Service, and
/// ExtensionRefs to the Middlewares it keeps (`kept`) or is about to (`wanted`).
fn own_filters(ctx: &Context, kept: &[Middleware], wanted: Option<&str>) -> OwnFilters {
    let mut middlewares: Vec<String> = kept.iter().map(ResourceExt::name_any).collect();
    middlewares.extend(wanted.map(str::to_owned));
    OwnFilters {
        // Without a Service address no ExternalAuth filter was ever added.
        outpost: outpost_service(&ctx.settings.forward_auth_outpost_url).ok(),
        middlewares,
    }
}

/// Deletes the Middlewares in `kept` other than `keep`.
async fn remove_stale_middlewares(
    pc: &ProxyConfig,
    ctx: &Context,
    kept: &[Middleware],
    keep: Option<&str>,
    report: &mut Report,
) -> Result<(), Failure> {
    let namespace = pc.namespace().unwrap_or_default();
    let api: Api<Middleware> = Api::namespaced(ctx.client.clone(), &namespace);
    let uid = pc.uid().unwrap_or_default();
    for name in stale_middlewares(kept, &uid, keep) {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => report.event(
                "MiddlewareDeleted",
                format!("deleted Traefik Middleware {namespace}/{name}, no longer in the spec"),
            ),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(api_failure(error)),
        }
    }
    Ok(())
}

async fn wire_route(
    pc: &ProxyConfig,
    wanted: &HttpRouteForwardAuth,
    ctx: &Context,
    own: &OwnFilters,
    report: &mut Report,
) -> Result<String, Failure> {
    let filter = route_filter(pc, &ctx.settings.forward_auth_outpost_url).map_err(refused)?;
    Kind::HttpRoute.require(ctx).await?;
    let namespace = pc.namespace().unwrap_or_default();
    let name = &wanted.name;
    let api: Api<HttpRoute> = Api::namespaced(ctx.client.clone(), &namespace);
    let route = api
        .get_opt(name)
        .await
        .map_err(api_failure)?
        .ok_or_else(|| Failure::route_not_found(&namespace, name))?;
    let kind = wanted.filter_kind();
    if let Some(updated) =
        route_with_filter(&route, &pc.name_any(), &filter, own).map_err(refused)?
    {
        // Guarded by the stored resourceVersion, like every write to an object of someone else.
        api.replace(name, &post_params(), &updated)
            .await
            .map_err(api_failure)?;
        report.event(
            "RouteWired",
            format!(
                "added the {} filter to every rule of HTTPRoute {namespace}/{name}",
                kind.as_str()
            ),
        );
    }
    if spec_changed(pc) {
        unwire_routes(pc, ctx, Some(name), own, report).await?;
    }
    Ok(match (kind, &own.outpost) {
        (RouteFilterKind::ExtensionRef, _) => format!(
            "every rule of HTTPRoute {namespace}/{name} runs Traefik Middleware {namespace}/{} first (ExtensionRef)",
            extension_ref_middleware(&filter).unwrap_or_default()
        ),
        (RouteFilterKind::ExternalAuth, Some(outpost)) => format!(
            "every rule of HTTPRoute {namespace}/{name} asks Service {}/{} port {} first (ExternalAuth); a cross-namespace backendRef needs a ReferenceGrant in {}",
            outpost.namespace, outpost.name, outpost.port, outpost.namespace
        ),
        (RouteFilterKind::ExternalAuth, None) => {
            format!(
                "every rule of HTTPRoute {namespace}/{name} asks the outpost first (ExternalAuth)"
            )
        }
    })
}

/// Takes the filters `pc` added out of the routes it wired other than `keep`.
async fn unwire_routes(
    pc: &ProxyConfig,
    ctx: &Context,
    keep: Option<&str>,
    own: &OwnFilters,
    report: &mut Report,
) -> Result<(), Failure> {
    let namespace = pc.namespace().unwrap_or_default();
    let api: Api<HttpRoute> = Api::namespaced(ctx.client.clone(), &namespace);
    let listed = api.list(&wired_for(pc)).await.map_err(api_failure)?;
    for route in listed
        .items
        .iter()
        .filter(|r| Some(r.name_any().as_str()) != keep)
    {
        if let Some(updated) = route_without_filters(route, &pc.name_any(), own) {
            let name = route.name_any();
            match api.replace(&name, &post_params(), &updated).await {
                Ok(_) => report.event(
                    "RouteUnwired",
                    format!("removed the forward-auth filters from HTTPRoute {namespace}/{name}"),
                ),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(api_failure(error)),
            }
        }
    }
    Ok(())
}

/// Objects labelled as wired for `pc`.
fn wired_for(pc: &ProxyConfig) -> ListParams {
    ListParams::default().labels(&format!("{PROXYCONFIG_LABEL}={}", pc.name_any()))
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(SERVICE_DISCOVERY_MANAGER.to_owned()),
        ..PostParams::default()
    }
}

/// Whether the status says something was wired for `pc` (its condition is kept while wired).
fn had_wiring(pc: &ProxyConfig) -> bool {
    pc.status
        .as_ref()
        .is_some_and(|s| find_condition(&s.conditions, STEP).is_some())
}

fn spec_changed(pc: &ProxyConfig) -> bool {
    pc.status.as_ref().and_then(|s| s.observed_generation) != pc.metadata.generation
}

fn refused(problem: WiringProblem) -> Failure {
    Failure::forward_auth(problem.reason(), problem.to_string())
}

fn api_failure(error: kube::Error) -> Failure {
    Failure::proxy_api(STEP, error.to_string())
}
