//! The reverse proxy's half of forward auth: the Traefik `Middleware` and the Gateway API
//! `ExternalAuth` filter a ProxyConfig asks for, and what to do about what the API server holds.
//! Pure; the controller does the I/O.

use std::collections::BTreeMap;

use gitops_crd::names::{PROXYCONFIG_LABEL, SERVICE_DISCOVERY_MANAGER, labels};
use gitops_crd::{
    HttpRouteForwardAuth, ProxyConfig, ProxyMode, RouteFilterKind, TraefikForwardAuth,
};
use gitops_proxy_crds::gateway_httproute::{
    HttpRoute, HttpRouteRulesFilters, HttpRouteRulesFiltersExtensionRef,
    HttpRouteRulesFiltersExternalAuth, HttpRouteRulesFiltersExternalAuthBackendRef,
    HttpRouteRulesFiltersExternalAuthHttp, HttpRouteRulesFiltersExternalAuthProtocol,
    HttpRouteRulesFiltersType,
};
use gitops_proxy_crds::traefik_middleware::{Middleware, MiddlewareForwardAuth, MiddlewareSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

/// The embedded (or any) outpost's endpoint for Traefik's forwardAuth.
pub const TRAEFIK_AUTH_PATH: &str = "/outpost.goauthentik.io/auth/traefik";

/// The outpost's endpoint for Envoy-style external authorization (the original path follows
/// it), which Gateway API's `ExternalAuth` filter calls.
pub const ENVOY_AUTH_PATH: &str = "/outpost.goauthentik.io/auth/envoy";

/// The identity headers authentik's Traefik guide copies from the outpost's answer onto the
/// request the service receives.
pub const AUTH_RESPONSE_HEADERS: [&str; 12] = [
    "X-authentik-username",
    "X-authentik-groups",
    "X-authentik-entitlements",
    "X-authentik-email",
    "X-authentik-name",
    "X-authentik-uid",
    "X-authentik-jwt",
    "X-authentik-meta-jwks",
    "X-authentik-meta-outpost",
    "X-authentik-meta-provider",
    "X-authentik-meta-app",
    "X-authentik-meta-version",
];

/// Appended to the ProxyConfig's name when `middlewareName` is not given.
pub const MIDDLEWARE_NAME_SUFFIX: &str = "-authentik";

/// Why the wiring a ProxyConfig asks for cannot be made; nothing is written then.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WiringProblem {
    #[error(
        "forwardAuth is set but authentikConfig.mode is {mode}, where authentik's outpost proxies the traffic itself and answers no forward-auth requests; use forward_single or forward_domain, or remove forwardAuth"
    )]
    ModeWithoutForwardAuth { mode: &'static str },
    #[error(
        "Middleware {namespace}/{name} already exists and was not created for this ProxyConfig; it is left alone: delete or rename it, or set forwardAuth.traefik.middlewareName to another name"
    )]
    MiddlewareNotOurs { namespace: String, name: String },
    #[error(
        "the default Middleware name {name:?} is longer than 253 characters; set forwardAuth.traefik.middlewareName"
    )]
    NameTooLong { name: String },
    #[error(
        "the outpost URL {url:?} names no in-cluster Service (<service>.<namespace>.svc[.cluster.local][:port]), which an HTTPRoute ExternalAuth filter needs as its backendRef; set the controller's FORWARD_AUTH_OUTPOST_URL to the outpost's Service address"
    )]
    OutpostNotAService { url: String },
    #[error(
        "HTTPRoute {namespace}/{name} already has an ExternalAuth filter this product did not add; it is left alone: remove that filter or name another route"
    )]
    RouteHasOtherExternalAuth { namespace: String, name: String },
    #[error(
        "forwardAuth.httpRoute.filter is ExtensionRef, a reference to the Traefik Middleware this ProxyConfig keeps, but forwardAuth.traefik is not set: set forwardAuth.traefik (traefik: {{}} for the defaults) or use the ExternalAuth filter"
    )]
    ExtensionRefWithoutMiddleware,
}

impl WiringProblem {
    /// CamelCase reason for the condition.
    pub fn reason(&self) -> &'static str {
        match self {
            WiringProblem::ModeWithoutForwardAuth { .. } => "ModeWithoutForwardAuth",
            WiringProblem::MiddlewareNotOurs { .. } => "MiddlewareNotOurs",
            WiringProblem::NameTooLong { .. } => "InvalidMiddlewareName",
            WiringProblem::OutpostNotAService { .. } => "OutpostNotAService",
            WiringProblem::RouteHasOtherExternalAuth { .. } => "RouteHasOtherExternalAuth",
            WiringProblem::ExtensionRefWithoutMiddleware => "ExtensionRefWithoutMiddleware",
        }
    }
}

/// Whether a provider in `mode` answers forward-auth requests at all.
pub fn check_mode(mode: ProxyMode) -> Result<(), WiringProblem> {
    if mode == ProxyMode::Proxy {
        return Err(WiringProblem::ModeWithoutForwardAuth {
            mode: mode.as_str(),
        });
    }
    Ok(())
}

/// The name of the Middleware a ProxyConfig named `proxyconfig` asks for.
pub fn middleware_name(proxyconfig: &str, traefik: &TraefikForwardAuth) -> String {
    traefik
        .middleware_name
        .clone()
        .unwrap_or_else(|| format!("{proxyconfig}{MIDDLEWARE_NAME_SUFFIX}"))
}

/// The Middleware the controller keeps for `pc`: forwardAuth to `outpost_url`'s Traefik
/// endpoint, labelled with the ProxyConfig's name and owned by it (so that deleting the
/// ProxyConfig deletes it).
pub fn desired_middleware(
    pc: &ProxyConfig,
    traefik: &TraefikForwardAuth,
    outpost_url: &str,
) -> Result<Middleware, WiringProblem> {
    check_mode(pc.spec.authentik_config.mode)?;
    let name = middleware_name(&pc.name_any(), traefik);
    if name.len() > 253 {
        return Err(WiringProblem::NameTooLong { name });
    }
    let labels = BTreeMap::from([
        (labels::NAME.to_owned(), labels::PRODUCT.to_owned()),
        (
            labels::MANAGED_BY.to_owned(),
            SERVICE_DISCOVERY_MANAGER.to_owned(),
        ),
        (PROXYCONFIG_LABEL.to_owned(), pc.name_any()),
    ]);
    Ok(Middleware {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: pc.namespace(),
            labels: Some(labels),
            owner_references: owner_reference(pc).map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        spec: MiddlewareSpec {
            forward_auth: Some(MiddlewareForwardAuth {
                address: Some(format!(
                    "{}{TRAEFIK_AUTH_PATH}",
                    outpost_url.trim_end_matches('/')
                )),
                trust_forward_header: Some(true),
                auth_response_headers: Some(
                    AUTH_RESPONSE_HEADERS
                        .iter()
                        .map(|h| (*h).to_owned())
                        .collect(),
                ),
                ..MiddlewareForwardAuth::default()
            }),
            ..MiddlewareSpec::default()
        },
    })
}

/// The controller reference to `pc`. No `blockOwnerDeletion`: deleting the ProxyConfig must
/// never wait on its Middleware, and setting it would need the finalizers permission.
fn owner_reference(pc: &ProxyConfig) -> Option<OwnerReference> {
    let mut owner = pc.controller_owner_ref(&())?;
    owner.block_owner_deletion = None;
    Some(owner)
}

/// Whether `object` was created for the ProxyConfig with `owner_uid`.
pub fn owned_by(object: &Middleware, owner_uid: &str) -> bool {
    object
        .owner_references()
        .iter()
        .any(|owner| owner.controller == Some(true) && owner.uid == owner_uid)
}

/// What to do about the Middleware the API server holds under the desired name.
#[derive(Clone, Debug, PartialEq)]
pub enum MiddlewareAction {
    /// None exists: create the desired one.
    Create,
    /// Ours and as desired: no write.
    Keep,
    /// Ours but changed (by hand, or the spec changed): write this (the stored object with the
    /// desired spec, labels and owner).
    Update(Box<Middleware>),
}

/// Decides what to do about `existing`; a Middleware this ProxyConfig did not create is never
/// touched.
pub fn middleware_action(
    desired: &Middleware,
    existing: Option<&Middleware>,
) -> Result<MiddlewareAction, WiringProblem> {
    let Some(existing) = existing else {
        return Ok(MiddlewareAction::Create);
    };
    let owner_uid = desired
        .owner_references()
        .first()
        .map(|owner| owner.uid.as_str())
        .unwrap_or_default();
    if owner_uid.is_empty() || !owned_by(existing, owner_uid) {
        return Err(WiringProblem::MiddlewareNotOurs {
            namespace: existing.namespace().unwrap_or_default(),
            name: existing.name_any(),
        });
    }
    let labels_match = desired
        .labels()
        .iter()
        .all(|(key, value)| existing.labels().get(key) == Some(value));
    if existing.spec == desired.spec && labels_match {
        return Ok(MiddlewareAction::Keep);
    }
    let mut updated = existing.clone();
    updated.spec = desired.spec.clone();
    updated.labels_mut().extend(desired.labels().clone());
    Ok(MiddlewareAction::Update(Box::new(updated)))
}

/// Names of Middlewares in `candidates` that were created for the ProxyConfig with `owner_uid`
/// but are no longer wanted (`wanted`: the desired name, if any), e.g. after a rename or after
/// `forwardAuth` was removed.
pub fn stale_middlewares(
    candidates: &[Middleware],
    owner_uid: &str,
    wanted: Option<&str>,
) -> Vec<String> {
    candidates
        .iter()
        .filter(|m| owned_by(m, owner_uid) && Some(m.name_any().as_str()) != wanted)
        .map(ResourceExt::name_any)
        .collect()
}

/// The Service an in-cluster outpost URL points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutpostService {
    pub name: String,
    pub namespace: String,
    pub port: i32,
}

/// Reads `http(s)://<service>.<namespace>.svc[.cluster.local][:port][/]`.
pub fn outpost_service(url: &str) -> Result<OutpostService, WiringProblem> {
    let not_a_service = || WiringProblem::OutpostNotAService {
        url: url.to_owned(),
    };
    let (rest, default_port) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (rest, 80),
        (_, Some(rest)) => (rest, 443),
        _ => return Err(not_a_service()),
    };
    let authority = rest.trim_end_matches('/');
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().map_err(|_| not_a_service())?),
        None => (authority, default_port),
    };
    let host = host.strip_suffix(".cluster.local").unwrap_or(host);
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [name, namespace, "svc"] if !name.is_empty() && !namespace.is_empty() => {
            Ok(OutpostService {
                name: (*name).to_owned(),
                namespace: (*namespace).to_owned(),
                port,
            })
        }
        _ => Err(not_a_service()),
    }
}

/// The `ExternalAuth` filter (GEP-1494) to the outpost's Envoy endpoint, with the defaults the
/// API server fills in spelled out so that a stored filter compares equal.
pub fn external_auth_filter(outpost: &OutpostService) -> HttpRouteRulesFilters {
    HttpRouteRulesFilters {
        r#type: HttpRouteRulesFiltersType::ExternalAuth,
        external_auth: Some(HttpRouteRulesFiltersExternalAuth {
            protocol: HttpRouteRulesFiltersExternalAuthProtocol::Http,
            backend_ref: HttpRouteRulesFiltersExternalAuthBackendRef {
                group: Some(String::new()),
                kind: Some("Service".to_owned()),
                name: outpost.name.clone(),
                namespace: Some(outpost.namespace.clone()),
                port: Some(outpost.port),
            },
            http: Some(HttpRouteRulesFiltersExternalAuthHttp {
                path: Some(ENVOY_AUTH_PATH.to_owned()),
                allowed_response_headers: Some(
                    AUTH_RESPONSE_HEADERS
                        .iter()
                        .map(|h| (*h).to_owned())
                        .collect(),
                ),
                ..HttpRouteRulesFiltersExternalAuthHttp::default()
            }),
            forward_body: None,
            grpc: None,
        }),
        cors: None,
        extension_ref: None,
        request_header_modifier: None,
        request_mirror: None,
        request_redirect: None,
        response_header_modifier: None,
        url_rewrite: None,
    }
}

/// The filter `forwardAuth.httpRoute` asks for on every rule of its route: the ExternalAuth
/// filter to the Service `outpost_url` names, or an ExtensionRef to the Middleware the
/// ProxyConfig keeps under `forwardAuth.traefik`.
pub fn route_filter(
    pc: &ProxyConfig,
    outpost_url: &str,
) -> Result<HttpRouteRulesFilters, WiringProblem> {
    let forward_auth = pc.spec.forward_auth.as_ref();
    let kind = forward_auth
        .and_then(|f| f.http_route.as_ref())
        .map(HttpRouteForwardAuth::filter_kind)
        .unwrap_or_default();
    match kind {
        RouteFilterKind::ExternalAuth => Ok(external_auth_filter(&outpost_service(outpost_url)?)),
        RouteFilterKind::ExtensionRef => {
            let middleware =
                wanted_middleware(pc).ok_or(WiringProblem::ExtensionRefWithoutMiddleware)?;
            Ok(extension_ref_filter(&middleware))
        }
    }
}

/// The name of the Middleware `pc`'s spec asks for (`forwardAuth.traefik`), if any.
pub fn wanted_middleware(pc: &ProxyConfig) -> Option<String> {
    let traefik = pc.spec.forward_auth.as_ref()?.traefik.as_ref()?;
    Some(middleware_name(&pc.name_any(), traefik))
}

// The group and kind of a Traefik Middleware, as an `ExtensionRef` filter names it.
const TRAEFIK_MIDDLEWARE_GROUP: &str = "traefik.io";
const TRAEFIK_MIDDLEWARE_KIND: &str = "Middleware";

/// An `ExtensionRef` filter naming the Traefik Middleware `middleware` (in the route's own
/// namespace: an ExtensionRef is a local reference), which Traefik's Gateway API provider runs
/// like a route's `middlewares`.
pub fn extension_ref_filter(middleware: &str) -> HttpRouteRulesFilters {
    HttpRouteRulesFilters {
        r#type: HttpRouteRulesFiltersType::ExtensionRef,
        extension_ref: Some(HttpRouteRulesFiltersExtensionRef {
            group: TRAEFIK_MIDDLEWARE_GROUP.to_owned(),
            kind: TRAEFIK_MIDDLEWARE_KIND.to_owned(),
            name: middleware.to_owned(),
        }),
        cors: None,
        external_auth: None,
        request_header_modifier: None,
        request_mirror: None,
        request_redirect: None,
        response_header_modifier: None,
        url_rewrite: None,
    }
}

/// The Traefik Middleware an `ExtensionRef` filter names, if it names one.
pub fn extension_ref_middleware(filter: &HttpRouteRulesFilters) -> Option<&str> {
    if filter.r#type != HttpRouteRulesFiltersType::ExtensionRef {
        return None;
    }
    let reference = filter.extension_ref.as_ref()?;
    (reference.group == TRAEFIK_MIDDLEWARE_GROUP && reference.kind == TRAEFIK_MIDDLEWARE_KIND)
        .then_some(reference.name.as_str())
}

/// Whether an `ExternalAuth` filter sends requests to `outpost` (a backendRef without a
/// namespace is in the route's `route_namespace`).
pub fn external_auth_to(
    filter: &HttpRouteRulesFilters,
    outpost: &OutpostService,
    route_namespace: &str,
) -> bool {
    is_external_auth(filter)
        && filter.external_auth.as_ref().is_some_and(|auth| {
            let backend = &auth.backend_ref;
            backend.name == outpost.name
                && backend.namespace.as_deref().unwrap_or(route_namespace) == outpost.namespace
        })
}

fn is_external_auth(filter: &HttpRouteRulesFilters) -> bool {
    filter.r#type == HttpRouteRulesFiltersType::ExternalAuth
}

/// The filters a ProxyConfig adds to routes, and so the only ones it takes out again.
#[derive(Clone, Debug)]
pub struct OwnFilters {
    /// The outpost's Service: `ExternalAuth` filters to it (none without a Service address).
    pub outpost: Option<OutpostService>,
    /// The Traefik Middlewares the ProxyConfig keeps or kept: `ExtensionRef` filters to them.
    pub middlewares: Vec<String>,
}

impl OwnFilters {
    fn contain(&self, filter: &HttpRouteRulesFilters, route_namespace: &str) -> bool {
        let to_outpost = self
            .outpost
            .as_ref()
            .is_some_and(|outpost| external_auth_to(filter, outpost, route_namespace));
        let to_middleware = extension_ref_middleware(filter)
            .is_some_and(|name| self.middlewares.iter().any(|own| own == name));
        to_outpost || to_middleware
    }
}

/// Whether the route carries the label saying ProxyConfig `proxyconfig` wired it.
fn wired_by(route: &HttpRoute, proxyconfig: &str) -> bool {
    route.labels().get(PROXYCONFIG_LABEL).map(String::as_str) == Some(proxyconfig)
}

/// The route with `filter` in every rule, labelled as wired by `proxyconfig`; `None` when it
/// already is. On a route this ProxyConfig wired, the filters of `own` other than `filter` (what
/// it added before the spec changed) are taken out; nothing else is. An `ExternalAuth` filter is
/// the only one of its kind in a rule: an edited one of ours is replaced, someone else's (on a
/// route this ProxyConfig has not wired) is never replaced.
pub fn route_with_filter(
    route: &HttpRoute,
    proxyconfig: &str,
    filter: &HttpRouteRulesFilters,
    own: &OwnFilters,
) -> Result<Option<HttpRoute>, WiringProblem> {
    let ours = wired_by(route, proxyconfig);
    let namespace = route.namespace().unwrap_or_default();
    let mut updated = route.clone();
    for rule in updated.spec.rules.iter_mut().flatten() {
        let filters = rule.filters.get_or_insert_default();
        if ours {
            filters.retain(|f| f == filter || !own.contain(f, &namespace));
        }
        if is_external_auth(filter) {
            let foreign = filters.iter().any(|f| is_external_auth(f) && f != filter);
            if foreign && !ours {
                return Err(WiringProblem::RouteHasOtherExternalAuth {
                    namespace: route.namespace().unwrap_or_default(),
                    name: route.name_any(),
                });
            }
            filters.retain(|f| !is_external_auth(f));
        }
        if !filters.contains(filter) {
            // First, so that authentication runs before any other filter.
            filters.insert(0, filter.clone());
        }
    }
    updated
        .labels_mut()
        .insert(PROXYCONFIG_LABEL.to_owned(), proxyconfig.to_owned());
    Ok((updated != *route).then_some(updated))
}

/// The route without the filters of `own` and without the label of ProxyConfig `proxyconfig`;
/// `None` when it did not wire this route.
pub fn route_without_filters(
    route: &HttpRoute,
    proxyconfig: &str,
    own: &OwnFilters,
) -> Option<HttpRoute> {
    if !wired_by(route, proxyconfig) {
        return None;
    }
    let namespace = route.namespace().unwrap_or_default();
    let mut updated = route.clone();
    for rule in updated.spec.rules.iter_mut().flatten() {
        if let Some(filters) = rule.filters.as_mut() {
            filters.retain(|f| !own.contain(f, &namespace));
        }
    }
    updated.labels_mut().remove(PROXYCONFIG_LABEL);
    Some(updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn proxyconfig(mode: &str, forward_auth: serde_json::Value) -> ProxyConfig {
        serde_json::from_value(json!({
            "apiVersion": "gitops.io/v1",
            "kind": "ProxyConfig",
            "metadata": {"name": "grafana", "namespace": "monitoring", "uid": "uid-1"},
            "spec": {
                "serviceName": "grafana",
                "serviceNamespace": "monitoring",
                "externalHost": "grafana.example.com",
                "internalHost": "http://grafana.monitoring.svc:3000",
                "authentikConfig": {"providerName": "grafana", "mode": mode},
                "forwardAuth": forward_auth,
            }
        }))
        .expect("valid ProxyConfig")
    }

    fn traefik(pc: &ProxyConfig) -> TraefikForwardAuth {
        pc.spec
            .forward_auth
            .as_ref()
            .and_then(|f| f.traefik.clone())
            .expect("traefik wiring")
    }

    fn desired(pc: &ProxyConfig) -> Middleware {
        desired_middleware(
            pc,
            &traefik(pc),
            "http://authentik-server.authentik.svc:9000/",
        )
        .expect("wiring")
    }

    #[test]
    fn middleware_forwards_to_the_outposts_traefik_endpoint_with_authentiks_headers() {
        let pc = proxyconfig("forward_single", json!({"traefik": {}}));
        let middleware = desired(&pc);
        assert_eq!(middleware.name_any(), "grafana-authentik");
        assert_eq!(middleware.namespace().as_deref(), Some("monitoring"));
        let value = serde_json::to_value(&middleware.spec).expect("serializes");
        assert_eq!(
            value,
            json!({"forwardAuth": {
                "address": "http://authentik-server.authentik.svc:9000/outpost.goauthentik.io/auth/traefik",
                "trustForwardHeader": true,
                "authResponseHeaders": AUTH_RESPONSE_HEADERS,
            }})
        );
        let owner = &middleware.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("ProxyConfig", "grafana", "uid-1")
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, None);
        assert_eq!(middleware.labels()[PROXYCONFIG_LABEL], "grafana");
    }

    #[test]
    fn a_given_name_wins_and_forward_domain_is_wired_too() {
        let pc = proxyconfig(
            "forward_domain",
            json!({"traefik": {"middlewareName": "sso"}}),
        );
        assert_eq!(desired(&pc).name_any(), "sso");
    }

    #[test]
    fn proxy_mode_cannot_use_forward_auth() {
        let pc = proxyconfig("proxy", json!({"traefik": {}}));
        let problem = desired_middleware(&pc, &traefik(&pc), "http://a:9000").expect_err("refused");
        assert_eq!(problem.reason(), "ModeWithoutForwardAuth");
        assert!(problem.to_string().contains("proxy"), "{problem}");
    }

    #[test]
    fn missing_middleware_is_created_and_a_matching_one_is_kept() {
        let pc = proxyconfig("forward_single", json!({"traefik": {}}));
        let want = desired(&pc);
        assert_eq!(middleware_action(&want, None), Ok(MiddlewareAction::Create));
        let mut stored = want.clone();
        stored.metadata.resource_version = Some("7".into());
        stored
            .labels_mut()
            .insert("someone/else".into(), "kept".into());
        assert_eq!(
            middleware_action(&want, Some(&stored)),
            Ok(MiddlewareAction::Keep)
        );
    }

    #[test]
    fn a_changed_middleware_of_ours_is_reverted_keeping_its_metadata() {
        let pc = proxyconfig("forward_single", json!({"traefik": {}}));
        let want = desired(&pc);
        let mut stored = want.clone();
        stored.metadata.resource_version = Some("7".into());
        stored
            .labels_mut()
            .insert("someone/else".into(), "kept".into());
        if let Some(forward_auth) = stored.spec.forward_auth.as_mut() {
            forward_auth.address = Some("http://elsewhere/auth".into());
            forward_auth.auth_response_headers = None;
        }
        let Ok(MiddlewareAction::Update(updated)) = middleware_action(&want, Some(&stored)) else {
            panic!("an update");
        };
        assert_eq!(updated.spec, want.spec);
        assert_eq!(updated.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(updated.labels()["someone/else"], "kept");
        assert_eq!(updated.labels()[PROXYCONFIG_LABEL], "grafana");
    }

    #[test]
    fn a_middleware_not_created_for_this_proxyconfig_is_never_touched() {
        let pc = proxyconfig("forward_single", json!({"traefik": {}}));
        let want = desired(&pc);
        let mut foreign = want.clone();
        foreign.metadata.owner_references = None;
        let problem = middleware_action(&want, Some(&foreign)).expect_err("refused");
        assert_eq!(problem.reason(), "MiddlewareNotOurs");
        assert!(
            problem.to_string().contains("monitoring/grafana-authentik"),
            "{problem}"
        );
        let mut other_owner = want.clone();
        if let Some(owners) = other_owner.metadata.owner_references.as_mut() {
            owners[0].uid = "uid-2".into();
        }
        assert!(middleware_action(&want, Some(&other_owner)).is_err());
    }

    #[test]
    fn stale_middlewares_are_only_ours_and_not_the_wanted_one() {
        let pc = proxyconfig("forward_single", json!({"traefik": {}}));
        let wanted = desired(&pc);
        let mut renamed = wanted.clone();
        renamed.metadata.name = Some("old-name".into());
        let mut foreign = wanted.clone();
        foreign.metadata.name = Some("foreign".into());
        foreign.metadata.owner_references = None;
        let all = [wanted, renamed, foreign];
        assert_eq!(
            stale_middlewares(&all, "uid-1", Some("grafana-authentik")),
            vec!["old-name".to_owned()]
        );
        assert_eq!(
            stale_middlewares(&all, "uid-1", None),
            vec!["grafana-authentik".to_owned(), "old-name".to_owned()]
        );
    }

    fn outpost() -> OutpostService {
        outpost_service("http://authentik-server.authentik.svc.cluster.local:9000")
            .expect("a Service")
    }

    fn own(outpost: &OutpostService, middlewares: &[String]) -> OwnFilters {
        OwnFilters {
            outpost: Some(outpost.clone()),
            middlewares: middlewares.to_vec(),
        }
    }

    fn route(filters: serde_json::Value, label: Option<&str>) -> HttpRoute {
        let mut route: HttpRoute = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"rules": [
                {"filters": filters, "backendRefs": [{"name": "web", "port": 80}]},
                {"backendRefs": [{"name": "web", "port": 80}]},
            ]},
        }))
        .expect("HTTPRoute");
        if let Some(label) = label {
            route
                .labels_mut()
                .insert(PROXYCONFIG_LABEL.into(), label.into());
        }
        route
    }

    #[test]
    fn outpost_urls_name_their_service() {
        assert_eq!(
            outpost(),
            OutpostService {
                name: "authentik-server".into(),
                namespace: "authentik".into(),
                port: 9000
            }
        );
        assert_eq!(
            outpost_service("https://outpost.auth.svc/")
                .expect("a Service")
                .port,
            443
        );
        for url in [
            "http://127.0.0.1:9000",
            "https://auth.example.com",
            "http://a.b.svc:port",
            "ftp://a.b.svc",
        ] {
            let problem = outpost_service(url).expect_err(url);
            assert_eq!(problem.reason(), "OutpostNotAService");
        }
    }

    #[test]
    fn every_rule_gets_the_filter_first_and_the_route_is_labelled() {
        let header = json!([{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x", "value": "1"}]}}]);
        let original = route(header, None);
        let outpost = outpost();
        let filter = external_auth_filter(&outpost);
        let wired = route_with_filter(&original, "web", &filter, &own(&outpost, &[]))
            .expect("allowed")
            .expect("a change");
        let rules = wired.spec.rules.as_ref().expect("rules");
        assert_eq!(rules.len(), 2);
        for rule in rules {
            assert_eq!(rule.filters.as_ref().expect("filters")[0], filter);
        }
        assert_eq!(rules[0].filters.as_ref().expect("filters").len(), 2);
        assert_eq!(wired.labels()[PROXYCONFIG_LABEL], "web");
        let auth = serde_json::to_value(&filter).expect("serializes");
        assert_eq!(auth["externalAuth"]["http"]["path"], ENVOY_AUTH_PATH);
        assert_eq!(auth["externalAuth"]["protocol"], "HTTP");
        assert_eq!(
            auth["externalAuth"]["backendRef"],
            json!({"group": "", "kind": "Service", "name": "authentik-server", "namespace": "authentik", "port": 9000})
        );
        // Wired already: nothing to write.
        assert_eq!(
            route_with_filter(&wired, "web", &filter, &own(&outpost, &[])),
            Ok(None)
        );
    }

    #[test]
    fn an_edited_filter_is_reverted_but_someone_elses_is_never_replaced() {
        let outpost = outpost();
        let filter = external_auth_filter(&outpost);
        let mut edited = filter.clone();
        if let Some(http) = edited.external_auth.as_mut().and_then(|a| a.http.as_mut()) {
            http.path = Some("/elsewhere".into());
        }
        let edited = serde_json::to_value(vec![edited]).expect("serializes");
        let ours = route(edited.clone(), Some("web"));
        let reverted = route_with_filter(&ours, "web", &filter, &own(&outpost, &[]))
            .expect("ours")
            .expect("a change");
        assert_eq!(
            reverted.spec.rules.expect("rules")[0].filters,
            Some(vec![filter.clone()])
        );
        for label in [None, Some("other-proxyconfig")] {
            let foreign = route(edited.clone(), label);
            let problem = route_with_filter(&foreign, "web", &filter, &own(&outpost, &[]))
                .expect_err("refused");
            assert_eq!(problem.reason(), "RouteHasOtherExternalAuth");
            assert!(problem.to_string().contains("apps/web"), "{problem}");
        }
    }

    #[test]
    fn unwiring_removes_only_our_filters_from_routes_we_wired() {
        let outpost = outpost();
        let filter = external_auth_filter(&outpost);
        let other = json!([{"type": "ExtensionRef", "extensionRef": {"group": "x.io", "kind": "Thing", "name": "t"}}]);
        let plain = route(other, None);
        assert_eq!(
            route_without_filters(&plain, "web", &own(&outpost, &[])),
            None
        );
        let wired = route_with_filter(&plain, "web", &filter, &own(&outpost, &[]))
            .expect("allowed")
            .expect("a change");
        let unwired = route_without_filters(&wired, "web", &own(&outpost, &[])).expect("ours");
        assert!(!unwired.labels().contains_key(PROXYCONFIG_LABEL));
        let rules = unwired.spec.rules.expect("rules");
        assert_eq!(
            rules[0].filters,
            plain.spec.rules.as_ref().expect("rules")[0].filters
        );
        assert_eq!(rules[1].filters, Some(vec![]));
    }

    fn rule_filters(route: &HttpRoute) -> Vec<Vec<HttpRouteRulesFilters>> {
        route
            .spec
            .rules
            .iter()
            .flatten()
            .map(|rule| rule.filters.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn an_extension_ref_names_the_traefik_middleware_first_in_every_rule() {
        let header = json!([{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x", "value": "1"}]}}]);
        let original = route(header.clone(), None);
        let outpost = outpost();
        let kept = ["web-authentik".to_owned()];
        let filter = extension_ref_filter("web-authentik");
        assert_eq!(
            serde_json::to_value(&filter).expect("serializes"),
            json!({"type": "ExtensionRef", "extensionRef": {"group": "traefik.io", "kind": "Middleware", "name": "web-authentik"}})
        );
        assert_eq!(extension_ref_middleware(&filter), Some("web-authentik"));
        let wired = route_with_filter(&original, "web", &filter, &own(&outpost, &kept))
            .expect("allowed")
            .expect("a change");
        let rules = rule_filters(&wired);
        assert_eq!(rules[0][0], filter);
        assert_eq!(rules[0].len(), 2, "the route's own filter stays");
        assert_eq!(rules[1], vec![filter.clone()]);
        assert_eq!(wired.labels()[PROXYCONFIG_LABEL], "web");
        assert_eq!(
            route_with_filter(&wired, "web", &filter, &own(&outpost, &kept)),
            Ok(None)
        );

        // Unwired: only the reference to our Middleware goes.
        let unwired = route_without_filters(&wired, "web", &own(&outpost, &kept)).expect("ours");
        assert_eq!(rule_filters(&unwired), rule_filters(&original));
    }

    #[test]
    fn extension_refs_of_others_are_kept() {
        let outpost = outpost();
        let kept = ["web-authentik".to_owned()];
        let others = json!([
            {"type": "ExtensionRef", "extensionRef": {"group": "traefik.io", "kind": "Middleware", "name": "rate-limit"}},
            {"type": "ExtensionRef", "extensionRef": {"group": "x.io", "kind": "Middleware", "name": "web-authentik"}},
        ]);
        let original = route(others, None);
        let filter = extension_ref_filter("web-authentik");
        let wired = route_with_filter(&original, "web", &filter, &own(&outpost, &kept))
            .expect("allowed")
            .expect("a change");
        assert_eq!(rule_filters(&wired)[0].len(), 3);
        assert_eq!(
            extension_ref_middleware(&rule_filters(&wired)[0][1]),
            Some("rate-limit")
        );
        assert_eq!(
            extension_ref_middleware(&rule_filters(&wired)[0][2]),
            None,
            "another group"
        );
        let unwired = route_without_filters(&wired, "web", &own(&outpost, &kept)).expect("ours");
        assert_eq!(rule_filters(&unwired), rule_filters(&original));
    }

    #[test]
    fn switching_the_filter_kind_takes_out_only_what_this_proxyconfig_added() {
        let outpost = outpost();
        let kept = ["web-authentik".to_owned(), "web-old".to_owned()];
        let external = external_auth_filter(&outpost);
        let reference = extension_ref_filter("web-authentik");
        let neighbour = json!([{"type": "ExtensionRef", "extensionRef": {"group": "traefik.io", "kind": "Middleware", "name": "rate-limit"}}]);
        let original = route(neighbour, None);

        let with_external = route_with_filter(&original, "web", &external, &own(&outpost, &kept))
            .expect("allowed")
            .expect("a change");
        let switched = route_with_filter(&with_external, "web", &reference, &own(&outpost, &kept))
            .expect("ours")
            .expect("a change");
        let rules = rule_filters(&switched);
        assert_eq!(
            rules[0],
            vec![reference.clone(), rule_filters(&original)[0][0].clone()]
        );
        assert_eq!(rules[1], vec![reference.clone()]);

        // A renamed Middleware: the reference to the old name goes, the new one comes.
        let renamed = extension_ref_filter("web-old");
        let old = route_with_filter(&original, "web", &renamed, &own(&outpost, &kept))
            .expect("allowed")
            .expect("a change");
        let new = route_with_filter(&old, "web", &reference, &own(&outpost, &kept))
            .expect("ours")
            .expect("a change");
        assert_eq!(rule_filters(&new), rules);

        // And back: the ExtensionRef goes, the ExternalAuth comes.
        let back = route_with_filter(&switched, "web", &external, &own(&outpost, &kept))
            .expect("ours")
            .expect("a change");
        assert_eq!(rule_filters(&back), rule_filters(&with_external));

        // On a route this ProxyConfig did not wire, a reference to its Middleware someone wrote
        // by hand is not taken out.
        let by_hand = route(
            serde_json::to_value(vec![reference.clone()]).expect("JSON"),
            None,
        );
        let wired = route_with_filter(&by_hand, "web", &external, &own(&outpost, &kept))
            .expect("allowed")
            .expect("a change");
        assert_eq!(rule_filters(&wired)[0], vec![external, reference]);
    }

    #[test]
    fn the_route_filter_follows_the_spec_and_external_auth_is_the_default() {
        let url = "http://authentik-server.authentik.svc:9000";
        let default = proxyconfig("forward_single", json!({"httpRoute": {"name": "web"}}));
        assert_eq!(
            route_filter(&default, url),
            Ok(external_auth_filter(
                &outpost_service(url).expect("a Service")
            ))
        );
        let explicit = proxyconfig(
            "forward_single",
            json!({"httpRoute": {"name": "web", "filter": "ExternalAuth"}}),
        );
        assert_eq!(route_filter(&explicit, url), route_filter(&default, url));
        assert_eq!(
            route_filter(&default, "http://127.0.0.1:9000").map_err(|p| p.reason()),
            Err("OutpostNotAService")
        );

        let reference = proxyconfig(
            "forward_single",
            json!({"traefik": {"middlewareName": "sso"}, "httpRoute": {"name": "web", "filter": "ExtensionRef"}}),
        );
        // The Middleware is Traefik's: any outpost address will do.
        assert_eq!(
            route_filter(&reference, "http://127.0.0.1:9000"),
            Ok(extension_ref_filter("sso"))
        );
        let defaults = proxyconfig(
            "forward_single",
            json!({"traefik": {}, "httpRoute": {"name": "web", "filter": "ExtensionRef"}}),
        );
        assert_eq!(
            route_filter(&defaults, url),
            Ok(extension_ref_filter("grafana-authentik"))
        );
        let without = proxyconfig(
            "forward_single",
            json!({"httpRoute": {"name": "web", "filter": "ExtensionRef"}}),
        );
        let problem = route_filter(&without, url).expect_err("refused");
        assert_eq!(problem.reason(), "ExtensionRefWithoutMiddleware");
        assert!(
            problem.to_string().contains("forwardAuth.traefik"),
            "{problem}"
        );
    }
}
