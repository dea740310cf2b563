//! The routes that serve ProxyConfigs' hosts (Ingress; Traefik IngressRoute and Gateway API
//! HTTPRoute when their CRDs are served at start-up) and the Middlewares they use, watched into
//! caches, never polled: a route event reconciles the ProxyConfigs whose host it serves, and the
//! `Protected` condition is computed from the caches without an API call. `gitops_plan::exposure`
//! decides.

use std::collections::BTreeSet;

use futures::stream::{self, BoxStream, StreamExt};
use gitops_crd::ProxyConfig;
use gitops_crd::conditions::{ConditionStatus, ConditionUpdate, find_condition};
use gitops_crd::names::{PROXYCONFIG_LABEL, condition_types};
use gitops_plan::exposure::{
    Outpost, ServingRoute, external_hostname, forward_auth_middlewares, http_route_serving,
    ingress_route_serving, ingress_serving, protected_condition,
};
use gitops_plan::forward_auth::outpost_service;
use gitops_proxy_crds::gateway_httproute::HttpRoute;
use gitops_proxy_crds::traefik_ingressroute::IngressRoute;
use gitops_proxy_crds::traefik_middleware::Middleware;
use gitops_runtime::Readiness;
use gitops_runtime::watches::{
    CacheSynced, cached_watch, clear_managed_fields, resource_name, scoped,
};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::forward_auth::{Served, ServedKinds};

/// The cached routes and Middlewares, and where forward auth must go.
#[derive(Clone)]
pub struct Routes {
    ingresses: Store<Ingress>,
    ingress_routes: Option<Store<IngressRoute>>,
    http_routes: Option<Store<HttpRoute>>,
    middlewares: Option<Store<Middleware>>,
    outpost: Outpost,
}

impl Routes {
    /// The routes serving `pc`'s host, each with whether it asks the outpost first.
    pub fn serving(&self, pc: &ProxyConfig) -> Vec<ServingRoute> {
        let host = external_hostname(&pc.spec.external_host);
        let guards: BTreeSet<(String, String)> = self
            .middlewares
            .as_ref()
            .map(|store| {
                forward_auth_middlewares(store.state().iter().map(|m| &**m), &self.outpost)
            })
            .unwrap_or_default();
        let mut routes: Vec<ServingRoute> = self
            .ingresses
            .state()
            .iter()
            .filter_map(|i| ingress_serving(i, &host, &guards, &self.outpost))
            .collect();
        if let Some(store) = &self.ingress_routes {
            routes.extend(
                store
                    .state()
                    .iter()
                    .filter_map(|r| ingress_route_serving(r, &host, &guards)),
            );
        }
        if let Some(store) = &self.http_routes {
            routes.extend(
                store
                    .state()
                    .iter()
                    .filter_map(|r| http_route_serving(r, &host, &guards, &self.outpost)),
            );
        }
        routes.sort_by(|a, b| a.route.cmp(&b.route));
        routes
    }

    /// The `Protected` condition of a Ready `pc`, and the routes that leave it exposed.
    pub fn protected(&self, pc: &ProxyConfig) -> (ConditionUpdate, Vec<String>) {
        let serving = self.serving(pc);
        let condition = protected_condition(&external_hostname(&pc.spec.external_host), &serving);
        let exposed = serving
            .iter()
            .filter(|r| !r.protected)
            .map(|r| r.route.to_string())
            .collect();
        crate::metrics::set_exposed(
            &pc.namespace().unwrap_or_default(),
            &pc.name_any(),
            condition.status == ConditionStatus::False,
        );
        (condition, exposed)
    }
}

/// The route watches: their caches, when each is full, and the ProxyConfigs to reconcile on
/// their events.
pub struct RouteWatches {
    pub routes: Routes,
    pub synced: Vec<CacheSynced>,
    pub triggers: BoxStream<'static, ObjectRef<ProxyConfig>>,
}

/// One kind's watch: its cache, filled by the returned stream of changed objects.
type Watched<K> = (Store<K>, BoxStream<'static, K>);

/// Starts a cached watch of `K` and registers when its cache is full.
fn start<K>(
    client: &kube::Client,
    namespace: Option<&str>,
    readiness: &Readiness,
    synced: &mut Vec<CacheSynced>,
) -> Watched<K>
where
    K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let watch = cached_watch::<K>(
        scoped(client, namespace),
        watcher::Config::default(),
        clear_managed_fields,
        |_| {},
        readiness.resource(resource_name::<K>()),
    );
    synced.push(watch.synced);
    let changed = watch.stream.filter_map(|e| async move { e.ok() }).boxed();
    (watch.store, changed)
}

/// Starts the watches of the route kinds the API server serves now (a CRD installed later is
/// watched after a restart; until then its routes are not seen).
pub async fn watch(
    client: &kube::Client,
    namespace: Option<&str>,
    readiness: &Readiness,
    served: &ServedKinds,
    proxyconfigs: Store<ProxyConfig>,
    outpost_url: &str,
) -> RouteWatches {
    let mut synced = Vec::new();
    let (ingresses, ingress_events) = start::<Ingress>(client, namespace, readiness, &mut synced);
    let ingress_routes = served_at_start::<IngressRoute>(&served.ingress_route, client)
        .await
        .then(|| start::<IngressRoute>(client, namespace, readiness, &mut synced));
    let http_routes = served_at_start::<HttpRoute>(&served.http_route, client)
        .await
        .then(|| start::<HttpRoute>(client, namespace, readiness, &mut synced));
    let middlewares = served_at_start::<Middleware>(&served.middleware, client)
        .await
        .then(|| start::<Middleware>(client, namespace, readiness, &mut synced));
    let routes = Routes {
        ingresses,
        ingress_routes: ingress_routes.as_ref().map(|(store, _)| store.clone()),
        http_routes: http_routes.as_ref().map(|(store, _)| store.clone()),
        middlewares: middlewares.as_ref().map(|(store, _)| store.clone()),
        outpost: Outpost {
            url: outpost_url.to_owned(),
            service: outpost_service(outpost_url).ok(),
        },
    };

    // A route event reconciles the ProxyConfigs whose host the route serves (before or after:
    // the cache holds the new object, the ProxyConfig's condition names the old one).
    let affected = {
        let outpost = routes.outpost.clone();
        let proxyconfigs = proxyconfigs.clone();
        move |route: ServedBy| {
            let refs: Vec<ObjectRef<ProxyConfig>> = proxyconfigs
                .state()
                .iter()
                .filter(|pc| {
                    let host = external_hostname(&pc.spec.external_host);
                    route.serves(&host, &outpost) || names_route(pc, &route.name())
                })
                .map(|pc| ObjectRef::from_obj(&**pc))
                .collect();
            stream::iter(refs)
        }
    };
    let mut triggers = vec![
        ingress_events
            .flat_map({
                let affected = affected.clone();
                move |i| affected(ServedBy::Ingress(i))
            })
            .boxed(),
    ];
    if let Some((_, events)) = ingress_routes {
        let affected = affected.clone();
        triggers.push(
            events
                .flat_map(move |r| affected(ServedBy::IngressRoute(r)))
                .boxed(),
        );
    }
    if let Some((_, events)) = http_routes {
        triggers.push(
            events
                .flat_map(move |r| affected(ServedBy::HttpRoute(r)))
                .boxed(),
        );
    }
    // A Middleware decides whether the routes naming it are protected: reconcile the
    // ProxyConfig it was made for and those reported exposed (the few that can change).
    if let Some((_, events)) = middlewares {
        triggers.push(
            events
                .flat_map(move |m: Middleware| {
                    let owner = m.labels().get(PROXYCONFIG_LABEL).cloned();
                    let namespace = m.namespace();
                    let refs: Vec<ObjectRef<ProxyConfig>> = proxyconfigs
                        .state()
                        .iter()
                        .filter(|pc| {
                            (owner.as_deref() == Some(pc.name_any().as_str())
                                && pc.namespace() == namespace)
                                || exposed(pc)
                        })
                        .map(|pc| ObjectRef::from_obj(&**pc))
                        .collect();
                    stream::iter(refs)
                })
                .boxed(),
        );
    }
    RouteWatches {
        routes,
        synced,
        triggers: stream::select_all(triggers).boxed(),
    }
}

/// Whether `K` is served; an unanswered discovery request counts as no (logged).
async fn served_at_start<K: kube::Resource<DynamicType = ()>>(
    served: &Served,
    client: &kube::Client,
) -> bool {
    served.ask::<K>(client).await.unwrap_or_else(|error| {
        tracing::warn!(%error, kind = %resource_name::<K>(), "could not tell whether the kind is served; its routes are not watched");
        false
    })
}

/// One changed route.
enum ServedBy {
    Ingress(Ingress),
    IngressRoute(IngressRoute),
    HttpRoute(HttpRoute),
}

impl ServedBy {
    fn serves(&self, host: &str, outpost: &Outpost) -> bool {
        let none = BTreeSet::new();
        match self {
            ServedBy::Ingress(i) => ingress_serving(i, host, &none, outpost).is_some(),
            ServedBy::IngressRoute(r) => ingress_route_serving(r, host, &none).is_some(),
            ServedBy::HttpRoute(r) => http_route_serving(r, host, &none, outpost).is_some(),
        }
    }

    /// `Kind namespace/name`, as conditions name it.
    fn name(&self) -> String {
        let (kind, namespace, name) = match self {
            ServedBy::Ingress(i) => ("Ingress", i.namespace(), i.name_any()),
            ServedBy::IngressRoute(r) => ("IngressRoute", r.namespace(), r.name_any()),
            ServedBy::HttpRoute(r) => ("HTTPRoute", r.namespace(), r.name_any()),
        };
        format!("{kind} {}/{name}", namespace.unwrap_or_default())
    }
}

/// Whether `pc`'s Protected condition names `route` (it served the host before a change).
fn names_route(pc: &ProxyConfig, route: &str) -> bool {
    pc.status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, condition_types::PROTECTED))
        .is_some_and(|c| c.message.contains(route))
}

/// Whether `pc` is reported exposed: a Middleware can turn only those protected (an Unknown
/// one has no route a Middleware could change, and reconciling all of them on every Middleware
/// event would cost a reconcile per ProxyConfig).
fn exposed(pc: &ProxyConfig) -> bool {
    pc.status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, condition_types::PROTECTED))
        .is_some_and(|c| c.status == "False")
}
