//! The routes that serve ProxyConfigs' hosts (Ingress; Traefik IngressRoute and Gateway API
//! HTTPRoute when their CRDs are served) and the Middlewares they use, watched into caches, never
//! polled: a route event reconciles the ProxyConfigs whose host it serves, and the `Protected`
//! condition is computed from the caches without an API call. `gitops_plan::exposure` decides.
//!
//! A kind whose CRD is not served at start-up is watched from the moment it is: until then the
//! controller watches that one CustomResourceDefinition by name (a watch that ends once the CRD
//! serves the version we read), so installing Traefik or Gateway API later needs no restart and a
//! cluster that has the CRDs at start-up makes no extra request.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use futures::stream::{self, BoxStream, StreamExt};
use gitops_crd::ProxyConfig;
use gitops_crd::conditions::{ConditionStatus, ConditionUpdate, find_condition};
use gitops_crd::names::{PROXYCONFIG_LABEL, condition_types};
use gitops_plan::exposure::{
    Outpost, ServingRoute, crd_serves, external_hostname, forward_auth_middlewares,
    http_route_serving, ingress_route_serving, ingress_serving, protected_condition,
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
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use crate::controller::paged;
use crate::forward_auth::{Served, ServedKinds};

/// The cache of a kind watched once its CRD is served; empty until that cache holds a full list.
type Later<K> = Arc<OnceLock<Store<K>>>;

/// The cached routes and Middlewares, and where forward auth must go.
#[derive(Clone)]
pub struct Routes {
    ingresses: Store<Ingress>,
    ingress_routes: Later<IngressRoute>,
    http_routes: Later<HttpRoute>,
    middlewares: Later<Middleware>,
    outpost: Outpost,
}

impl Routes {
    /// The routes serving `pc`'s host, each with whether it asks the outpost first.
    pub fn serving(&self, pc: &ProxyConfig) -> Vec<ServingRoute> {
        let host = external_hostname(&pc.spec.external_host);
        let guards: BTreeSet<(String, String)> = self
            .middlewares
            .get()
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
        if let Some(store) = self.ingress_routes.get() {
            routes.extend(
                store
                    .state()
                    .iter()
                    .filter_map(|r| ingress_route_serving(r, &host, &guards)),
            );
        }
        if let Some(store) = self.http_routes.get() {
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

/// One kind's watch: its cache, filled by the returned stream of changed objects, and when it
/// is full.
type Watched<K> = (Store<K>, BoxStream<'static, K>, CacheSynced);

/// A namespaced kind this module watches into a cache.
trait Watchable:
    kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl Watchable for Ingress {}
impl Watchable for IngressRoute {}
impl Watchable for HttpRoute {}
impl Watchable for Middleware {}

/// Starts a cached watch of `K`.
fn start<K: Watchable>(
    client: &kube::Client,
    namespace: Option<&str>,
    readiness: &Readiness,
) -> Watched<K> {
    let watch = cached_watch::<K>(
        scoped(client, namespace),
        paged(),
        clear_managed_fields,
        |_| {},
        readiness.resource(resource_name::<K>()),
    );
    let changed = watch.stream.filter_map(|e| async move { e.ok() }).boxed();
    (watch.store, changed, watch.synced)
}

/// Starts the watches of the route kinds: at once for those the API server serves now (their
/// caches count for readiness), the others once their CRD is served.
pub async fn watch(
    client: &kube::Client,
    namespace: Option<&str>,
    readiness: &Readiness,
    served: &ServedKinds,
    proxyconfigs: Store<ProxyConfig>,
    outpost_url: &str,
) -> RouteWatches {
    let (ingresses, ingress_events, ingresses_synced) =
        start::<Ingress>(client, namespace, readiness);
    let mut synced = vec![ingresses_synced];
    let routes = Routes {
        ingresses,
        ingress_routes: Later::default(),
        http_routes: Later::default(),
        middlewares: Later::default(),
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
        move |route: ServedBy| -> Vec<ObjectRef<ProxyConfig>> {
            proxyconfigs
                .state()
                .iter()
                .filter(|pc| {
                    let host = external_hostname(&pc.spec.external_host);
                    route.serves(&host, &outpost) || names_route(pc, &route.name())
                })
                .map(|pc| ObjectRef::from_obj(&**pc))
                .collect()
        }
    };
    // A Middleware decides whether the routes naming it are protected: reconcile the
    // ProxyConfig it was made for and those reported exposed (the few that can change).
    let guarded = move |m: Middleware| -> Vec<ObjectRef<ProxyConfig>> {
        let owner = m.labels().get(PROXYCONFIG_LABEL).cloned();
        let namespace = m.namespace();
        proxyconfigs
            .state()
            .iter()
            .filter(|pc| {
                (owner.as_deref() == Some(pc.name_any().as_str()) && pc.namespace() == namespace)
                    || exposed(pc)
            })
            .map(|pc| ObjectRef::from_obj(&**pc))
            .collect()
    };
    let mut watches = KindWatches {
        client,
        namespace,
        readiness,
        synced: &mut synced,
    };
    let ingress_route_events = watches
        .kind::<IngressRoute>(&served.ingress_route, &routes.ingress_routes, {
            let affected = affected.clone();
            move |r| affected(ServedBy::IngressRoute(r))
        })
        .await;
    let http_route_events = watches
        .kind::<HttpRoute>(&served.http_route, &routes.http_routes, {
            let affected = affected.clone();
            move |r| affected(ServedBy::HttpRoute(r))
        })
        .await;
    let middleware_events = watches
        .kind::<Middleware>(&served.middleware, &routes.middlewares, guarded)
        .await;
    let triggers = vec![
        ingress_events
            .flat_map(move |i| stream::iter(affected(ServedBy::Ingress(i))))
            .boxed(),
        ingress_route_events,
        http_route_events,
        middleware_events,
    ];
    RouteWatches {
        routes,
        synced,
        triggers: stream::select_all(triggers).boxed(),
    }
}

/// Starts the watches of optional kinds, now or once their CRD is served.
struct KindWatches<'a> {
    client: &'a kube::Client,
    namespace: Option<&'a str>,
    readiness: &'a Readiness,
    synced: &'a mut Vec<CacheSynced>,
}

impl KindWatches<'_> {
    /// The ProxyConfigs to reconcile on `K`'s events (`affected` maps one object to them),
    /// filling `cache`. Served now: watched at once, its cache counts for readiness. Not
    /// served: the stream first waits for the CRD, then watches; its cache is published once
    /// full, and then every ProxyConfig one of its objects affects is reconciled once (their
    /// `Protected` was computed without the kind).
    async fn kind<K: Watchable>(
        &mut self,
        served: &Served,
        cache: &Later<K>,
        affected: impl Fn(K) -> Vec<ObjectRef<ProxyConfig>> + Clone + Send + Sync + 'static,
    ) -> BoxStream<'static, ObjectRef<ProxyConfig>> {
        if served_at_start::<K>(served, self.client).await {
            let (store, events, synced) = start::<K>(self.client, self.namespace, self.readiness);
            self.synced.push(synced);
            let _ = cache.set(store);
            return events.flat_map(move |k| stream::iter(affected(k))).boxed();
        }
        let (client, namespace, readiness, cache) = (
            self.client.clone(),
            self.namespace.map(str::to_owned),
            self.readiness.clone(),
            cache.clone(),
        );
        stream::once(async move {
            until_crd_serves::<K>(&client).await;
            tracing::info!(kind = %resource_name::<K>(), "its CRD is served now; watching it");
            let (store, events, mut synced) = start::<K>(&client, namespace.as_deref(), &readiness);
            let full = {
                let (store, cache, affected) = (store.clone(), cache.clone(), affected.clone());
                async move {
                    if synced.wait_for(|synced| *synced).await.is_err() {
                        return Vec::new();
                    }
                    let _ = cache.set(store.clone());
                    store
                        .state()
                        .iter()
                        .flat_map(|k| affected((**k).clone()))
                        .collect()
                }
            };
            // Before the cache is published, reconciles would not see the kind: its events
            // count from then on (and the one pass above covers what came before).
            let changes = events
                .filter(move |_| std::future::ready(cache.get().is_some()))
                .flat_map(move |k| stream::iter(affected(k)));
            stream::select(stream::once(full).flat_map(stream::iter), changes)
        })
        .flatten()
        .boxed()
    }
}

/// Resolves once the API server serves `K` (its CRD is Established and serves `K`'s version),
/// watching only that CustomResourceDefinition. Failures are retried with backoff and logged.
async fn until_crd_serves<K: kube::Resource<DynamicType = ()>>(client: &kube::Client) {
    let name = format!("{}.{}", K::plural(&()), K::group(&()));
    let version = K::version(&());
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let config = paged().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher(crds, config).default_backoff().applied_objects());
    while let Some(event) = events.next().await {
        match event {
            Ok(crd) if crd_serves(&crd, &version) => return,
            Ok(_) => {}
            Err(error) => tracing::warn!(
                %error,
                crd = %name,
                "cannot watch the CustomResourceDefinition; its routes are not watched until it can be (the controller needs list and watch on customresourcedefinitions)"
            ),
        }
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
