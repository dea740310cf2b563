//! Which routes serve a ProxyConfig's external host, and whether each sends its requests
//! through forward auth to our outpost first: the `Protected` condition and `kubectl gitops
//! verify`'s exposure check. Pure; the caller brings the routes and Middlewares it watches.

use std::collections::BTreeSet;
use std::fmt;

use gitops_crd::conditions::{ConditionStatus, ConditionUpdate};
use gitops_crd::names::condition_types;
use gitops_proxy_crds::gateway_httproute::HttpRoute;
use gitops_proxy_crds::traefik_ingressroute::IngressRoute;
use gitops_proxy_crds::traefik_middleware::Middleware;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;

use crate::forward_auth::{
    OutpostService, TRAEFIK_AUTH_PATH, extension_ref_middleware, external_auth_to,
};

/// Ingress annotation naming Traefik middlewares (`<namespace>-<name>@kubernetescrd`, comma
/// separated).
pub const TRAEFIK_MIDDLEWARES_ANNOTATION: &str = "traefik.ingress.kubernetes.io/router.middlewares";
/// Ingress annotation of ingress-nginx's external authentication.
pub const NGINX_AUTH_URL_ANNOTATION: &str = "nginx.ingress.kubernetes.io/auth-url";
/// The outpost's endpoint for nginx's auth_request.
pub const NGINX_AUTH_PATH: &str = "/outpost.goauthentik.io/auth/nginx";

/// A route of some kind, as people name it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteRef {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for RouteRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A route serving the host, and whether it is protected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingRoute {
    pub route: RouteRef,
    pub protected: bool,
}

/// Where forward-auth requests must go to count as protected.
#[derive(Clone, Debug, Default)]
pub struct Outpost {
    /// Base URL (no trailing `/`) Traefik Middlewares and nginx annotations point at.
    pub url: String,
    /// The outpost's Service, for HTTPRoute ExternalAuth filters (when the URL names one).
    pub service: Option<OutpostService>,
}

/// The Traefik Middlewares (`namespace`, `name`) whose forwardAuth goes to the outpost.
pub fn forward_auth_middlewares<'a>(
    middlewares: impl IntoIterator<Item = &'a Middleware>,
    outpost: &Outpost,
) -> BTreeSet<(String, String)> {
    let address = format!("{}{TRAEFIK_AUTH_PATH}", outpost.url);
    middlewares
        .into_iter()
        .filter(|m| {
            m.spec
                .forward_auth
                .as_ref()
                .and_then(|f| f.address.as_deref())
                == Some(address.as_str())
        })
        .map(|m| (m.namespace().unwrap_or_default(), m.name_any()))
        .collect()
}

/// `host` as a route names it, against the ProxyConfig's host: exact, or a `*.` wildcard for one
/// label.
fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

/// The host of an `externalHost` (`grafana.example.com` or `https://grafana.example.com/x`).
pub fn external_hostname(external_host: &str) -> String {
    let rest = external_host
        .strip_prefix("https://")
        .or_else(|| external_host.strip_prefix("http://"))
        .unwrap_or(external_host);
    let authority = rest.split('/').next().unwrap_or_default();
    authority
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// An Ingress serving `host`: protected when it names a forward-auth Traefik Middleware, or
/// ingress-nginx's auth-url points at the outpost's nginx endpoint.
pub fn ingress_serving(
    ingress: &Ingress,
    host: &str,
    middlewares: &BTreeSet<(String, String)>,
    outpost: &Outpost,
) -> Option<ServingRoute> {
    let serves = ingress
        .spec
        .as_ref()?
        .rules
        .iter()
        .flatten()
        .any(|rule| rule.host.as_deref().is_some_and(|h| host_matches(h, host)));
    if !serves {
        return None;
    }
    let annotations = ingress.annotations();
    let via_traefik = annotations
        .get(TRAEFIK_MIDDLEWARES_ANNOTATION)
        .into_iter()
        .flat_map(|list| list.split(','))
        .filter_map(|entry| entry.trim().strip_suffix("@kubernetescrd"))
        .any(|qualified| {
            middlewares
                .iter()
                .any(|(namespace, name)| qualified == format!("{namespace}-{name}"))
        });
    let via_nginx = annotations
        .get(NGINX_AUTH_URL_ANNOTATION)
        .is_some_and(|url| url.starts_with(&format!("{}{NGINX_AUTH_PATH}", outpost.url)));
    Some(ServingRoute {
        route: RouteRef {
            kind: "Ingress",
            namespace: ingress.namespace().unwrap_or_default(),
            name: ingress.name_any(),
        },
        protected: via_traefik || via_nginx,
    })
}

/// The host names a Traefik rule's `Host(...)` matchers name.
fn rule_hosts(rule: &str) -> Vec<String> {
    let mut hosts = Vec::new();
    for (index, _) in rule.match_indices("Host(") {
        // HostRegexp( and HostSNI( are other matchers.
        if rule[..index].ends_with(|c: char| c.is_ascii_alphanumeric()) {
            continue;
        }
        let arguments = &rule[index + "Host(".len()..];
        let arguments = arguments.split(')').next().unwrap_or_default();
        hosts.extend(
            arguments
                .split(',')
                .map(|argument| {
                    argument
                        .trim()
                        .trim_matches(['`', '"'])
                        .to_ascii_lowercase()
                })
                .filter(|host| !host.is_empty()),
        );
    }
    hosts
}

/// A Traefik IngressRoute serving `host`: protected when every route of it matching the host
/// has a forward-auth Middleware to the outpost.
pub fn ingress_route_serving(
    route: &IngressRoute,
    host: &str,
    middlewares: &BTreeSet<(String, String)>,
) -> Option<ServingRoute> {
    let namespace = route.namespace().unwrap_or_default();
    let matching: Vec<_> = route
        .spec
        .routes
        .iter()
        .filter(|r| rule_hosts(&r.r#match).iter().any(|h| host_matches(h, host)))
        .collect();
    if matching.is_empty() {
        return None;
    }
    let protected = matching.iter().all(|r| {
        r.middlewares.iter().flatten().any(|m| {
            let key = (
                m.namespace.clone().unwrap_or_else(|| namespace.clone()),
                m.name.clone(),
            );
            middlewares.contains(&key)
        })
    });
    Some(ServingRoute {
        route: RouteRef {
            kind: "IngressRoute",
            namespace,
            name: route.name_any(),
        },
        protected,
    })
}

/// A Gateway API HTTPRoute naming `host`: protected when every rule has an ExternalAuth filter
/// to the outpost's Service, or an ExtensionRef to a forward-auth Traefik Middleware (in the
/// route's namespace: an ExtensionRef is a local reference).
pub fn http_route_serving(
    route: &HttpRoute,
    host: &str,
    middlewares: &BTreeSet<(String, String)>,
    outpost: &Outpost,
) -> Option<ServingRoute> {
    let serves = route
        .spec
        .hostnames
        .iter()
        .flatten()
        .any(|h| host_matches(h, host));
    if !serves {
        return None;
    }
    let namespace = route.namespace().unwrap_or_default();
    let to_outpost = |rule: &gitops_proxy_crds::gateway_httproute::HttpRouteRules| {
        rule.filters.iter().flatten().any(|f| {
            let via_external_auth = outpost
                .service
                .as_ref()
                .is_some_and(|service| external_auth_to(f, service, &namespace));
            let via_middleware = extension_ref_middleware(f)
                .is_some_and(|name| middlewares.contains(&(namespace.clone(), name.to_owned())));
            via_external_auth || via_middleware
        })
    };
    let rules = route.spec.rules.as_deref().unwrap_or_default();
    let protected = !rules.is_empty() && rules.iter().all(to_outpost);
    Some(ServingRoute {
        route: RouteRef {
            kind: "HTTPRoute",
            namespace,
            name: route.name_any(),
        },
        protected,
    })
}

/// Whether a CustomResourceDefinition is Established and serves `version`: its kind can be
/// watched then.
pub fn crd_serves(crd: &CustomResourceDefinition, version: &str) -> bool {
    let established = crd
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Established" && c.status == "True");
    established
        && crd
            .spec
            .versions
            .iter()
            .any(|v| v.name == version && v.served)
}

/// The `Protected` condition for the routes serving a host.
pub fn protected_condition(host: &str, routes: &[ServingRoute]) -> ConditionUpdate {
    const TYPE: &str = condition_types::PROTECTED;
    let exposed: Vec<String> = routes
        .iter()
        .filter(|r| !r.protected)
        .map(|r| r.route.to_string())
        .collect();
    if routes.is_empty() {
        return ConditionUpdate::new(
            TYPE,
            ConditionStatus::Unknown,
            "NoRouteFound",
            format!("no Ingress, HTTPRoute or IngressRoute serves {host}"),
        );
    }
    if !exposed.is_empty() {
        return ConditionUpdate::new(
            TYPE,
            false,
            "RouteWithoutForwardAuth",
            format!(
                "{} serve{} {host} without forward auth to the outpost: requests reach the service unauthenticated",
                exposed.join(", "),
                if exposed.len() == 1 { "s" } else { "" }
            ),
        );
    }
    let names: Vec<String> = routes.iter().map(|r| r.route.to_string()).collect();
    ConditionUpdate::new(
        TYPE,
        true,
        "AllRoutesForwardAuth",
        format!(
            "every route serving {host} asks the outpost first: {}",
            names.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward_auth::outpost_service;
    use serde_json::json;

    const OUTPOST: &str = "http://authentik-server.authentik.svc:9000";

    fn outpost() -> Outpost {
        Outpost {
            url: OUTPOST.into(),
            service: outpost_service(OUTPOST).ok(),
        }
    }

    fn middleware(namespace: &str, name: &str, address: &str) -> Middleware {
        serde_json::from_value(json!({
            "apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"forwardAuth": {"address": address}},
        }))
        .expect("Middleware")
    }

    fn guards() -> BTreeSet<(String, String)> {
        let all = [
            middleware("apps", "auth", &format!("{OUTPOST}{TRAEFIK_AUTH_PATH}")),
            middleware("apps", "elsewhere", "http://other/auth"),
        ];
        forward_auth_middlewares(&all, &outpost())
    }

    fn ingress(host: &str, annotations: serde_json::Value) -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "apps", "annotations": annotations},
            "spec": {"rules": [{"host": host}]},
        }))
        .expect("Ingress")
    }

    #[test]
    fn only_middlewares_to_the_outpost_count() {
        assert_eq!(
            guards().into_iter().collect::<Vec<_>>(),
            vec![("apps".to_owned(), "auth".to_owned())]
        );
    }

    #[test]
    fn external_hosts_reduce_to_their_host_name() {
        assert_eq!(external_hostname("Web.Example.com"), "web.example.com");
        assert_eq!(
            external_hostname("https://web.example.com:8443/app"),
            "web.example.com"
        );
    }

    #[test]
    fn ingresses_are_protected_by_a_traefik_middleware_or_nginx_auth_url() {
        let host = "web.example.com";
        let out = outpost();
        assert_eq!(
            ingress_serving(
                &ingress("other.example.com", json!({})),
                host,
                &guards(),
                &out
            ),
            None
        );
        let plain =
            ingress_serving(&ingress(host, json!({})), host, &guards(), &out).expect("serves");
        assert!(!plain.protected);
        assert_eq!(plain.route.to_string(), "Ingress apps/web");
        let traefik = ingress(
            "*.example.com",
            json!({TRAEFIK_MIDDLEWARES_ANNOTATION: "apps-strip@kubernetescrd, apps-auth@kubernetescrd"}),
        );
        assert!(
            ingress_serving(&traefik, host, &guards(), &out)
                .expect("serves")
                .protected
        );
        let wrong = ingress(
            host,
            json!({TRAEFIK_MIDDLEWARES_ANNOTATION: "apps-elsewhere@kubernetescrd"}),
        );
        assert!(
            !ingress_serving(&wrong, host, &guards(), &out)
                .expect("serves")
                .protected
        );
        let nginx = ingress(
            host,
            json!({NGINX_AUTH_URL_ANNOTATION: format!("{OUTPOST}{NGINX_AUTH_PATH}")}),
        );
        assert!(
            ingress_serving(&nginx, host, &guards(), &out)
                .expect("serves")
                .protected
        );
    }

    fn ingress_route(routes: serde_json::Value) -> IngressRoute {
        serde_json::from_value(json!({
            "apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"routes": routes},
        }))
        .expect("IngressRoute")
    }

    #[test]
    fn ingress_routes_need_the_middleware_on_every_route_for_the_host() {
        let host = "web.example.com";
        let guarded =
            json!({"match": "Host(`web.example.com`)", "middlewares": [{"name": "auth"}]});
        let api = json!({"match": "Host(`web.example.com`) && PathPrefix(`/api`)"});
        let other = json!({"match": "HostRegexp(`web.example.com`) || Host(`other.example.com`)"});
        assert_eq!(
            ingress_route_serving(&ingress_route(json!([other.clone()])), host, &guards()),
            None
        );
        let all = ingress_route_serving(
            &ingress_route(json!([guarded.clone(), other])),
            host,
            &guards(),
        )
        .expect("serves");
        assert!(all.protected);
        let partly = ingress_route_serving(&ingress_route(json!([guarded, api])), host, &guards())
            .expect("serves");
        assert!(!partly.protected);
        assert_eq!(partly.route.to_string(), "IngressRoute apps/web");
    }

    fn http_route(host: &str, rules: serde_json::Value) -> HttpRoute {
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"hostnames": [host], "rules": rules},
        }))
        .expect("HTTPRoute")
    }

    #[test]
    fn http_routes_need_the_external_auth_filter_on_every_rule() {
        let host = "web.example.com";
        let filter =
            crate::forward_auth::external_auth_filter(outpost().service.as_ref().expect("Service"));
        let route = |rules| http_route(host, rules);
        let guarded = json!({"filters": [filter]});
        assert!(
            http_route_serving(
                &route(json!([guarded.clone(), guarded.clone()])),
                host,
                &guards(),
                &outpost()
            )
            .expect("serves")
            .protected
        );
        let partly = http_route_serving(&route(json!([guarded, {}])), host, &guards(), &outpost())
            .expect("serves");
        assert!(!partly.protected);
        assert_eq!(
            http_route_serving(
                &route(json!([{}])),
                "other.example.com",
                &guards(),
                &outpost()
            ),
            None
        );
    }

    #[test]
    fn http_routes_with_an_extension_ref_to_a_forward_auth_middleware_are_protected() {
        let host = "web.example.com";
        let reference =
            |name: &str| json!({"filters": [crate::forward_auth::extension_ref_filter(name)]});
        let serving =
            |rules| http_route_serving(&http_route(host, rules), host, &guards(), &outpost());
        assert!(
            serving(json!([reference("auth"), reference("auth")]))
                .expect("serves")
                .protected
        );
        // A Middleware that does not send requests to the outpost protects nothing.
        assert!(
            !serving(json!([reference("elsewhere")]))
                .expect("serves")
                .protected
        );
        assert!(
            !serving(json!([reference("auth"), {}]))
                .expect("serves")
                .protected
        );
        // Another kind of extension with the Middleware's name is not the Middleware.
        let other_group = json!({"filters": [{"type": "ExtensionRef", "extensionRef": {"group": "example.io", "kind": "Middleware", "name": "auth"}}]});
        assert!(!serving(json!([other_group])).expect("serves").protected);
        // The reference is local: a Middleware of the same name in another namespace does not
        // count.
        let elsewhere = [middleware(
            "other",
            "auth",
            &format!("{OUTPOST}{TRAEFIK_AUTH_PATH}"),
        )];
        let guards_elsewhere = forward_auth_middlewares(&elsewhere, &outpost());
        assert!(
            !http_route_serving(
                &http_route(host, json!([reference("auth")])),
                host,
                &guards_elsewhere,
                &outpost()
            )
            .expect("serves")
            .protected
        );
    }

    #[test]
    fn the_condition_names_exposed_routes() {
        let route = |kind, protected| ServingRoute {
            route: RouteRef {
                kind,
                namespace: "apps".into(),
                name: "web".into(),
            },
            protected,
        };
        let unknown = protected_condition("web.example.com", &[]);
        assert_eq!(
            (unknown.status, unknown.reason.as_str()),
            (ConditionStatus::Unknown, "NoRouteFound")
        );
        let exposed = protected_condition(
            "web.example.com",
            &[route("HTTPRoute", true), route("Ingress", false)],
        );
        assert_eq!(
            (exposed.status, exposed.reason.as_str()),
            (ConditionStatus::False, "RouteWithoutForwardAuth")
        );
        assert!(
            exposed.message.starts_with("Ingress apps/web serves"),
            "{}",
            exposed.message
        );
        let protected = protected_condition("web.example.com", &[route("HTTPRoute", true)]);
        assert_eq!(protected.status, ConditionStatus::True);
    }

    #[test]
    fn a_crd_serves_a_version_once_established_and_served() {
        let crd = |established: &str, versions: serde_json::Value| -> CustomResourceDefinition {
            serde_json::from_value(json!({
                "metadata": {"name": "httproutes.gateway.networking.k8s.io"},
                "spec": {
                    "group": "gateway.networking.k8s.io",
                    "names": {"kind": "HTTPRoute", "plural": "httproutes"},
                    "scope": "Namespaced",
                    "versions": versions,
                },
                "status": {"conditions": [{"type": "Established", "status": established}]},
            }))
            .expect("CRD")
        };
        let v1 = json!([{"name": "v1", "served": true, "storage": true}]);
        assert!(crd_serves(&crd("True", v1.clone()), "v1"));
        assert!(!crd_serves(&crd("False", v1.clone()), "v1"));
        assert!(!crd_serves(&crd("True", v1), "v1beta1"));
        let not_served = json!([{"name": "v1", "served": false, "storage": true}]);
        assert!(!crd_serves(&crd("True", not_served), "v1"));
    }
}
