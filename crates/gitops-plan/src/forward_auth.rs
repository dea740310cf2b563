//! The reverse proxy's half of forward auth: the Traefik `Middleware` a ProxyConfig asks for,
//! and what to do about the one the API server holds. Pure; the controller does the I/O.

use std::collections::BTreeMap;

use gitops_crd::names::{PROXYCONFIG_LABEL, SERVICE_DISCOVERY_MANAGER, labels};
use gitops_crd::{ProxyConfig, ProxyMode, TraefikForwardAuth};
use gitops_proxy_crds::traefik_middleware::{Middleware, MiddlewareForwardAuth, MiddlewareSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

/// The embedded (or any) outpost's endpoint for Traefik's forwardAuth.
pub const TRAEFIK_AUTH_PATH: &str = "/outpost.goauthentik.io/auth/traefik";

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
}

impl WiringProblem {
    /// CamelCase reason for the condition.
    pub fn reason(&self) -> &'static str {
        match self {
            WiringProblem::ModeWithoutForwardAuth { .. } => "ModeWithoutForwardAuth",
            WiringProblem::MiddlewareNotOurs { .. } => "MiddlewareNotOurs",
            WiringProblem::NameTooLong { .. } => "InvalidMiddlewareName",
        }
    }
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
    let mode = pc.spec.authentik_config.mode;
    if mode == ProxyMode::Proxy {
        return Err(WiringProblem::ModeWithoutForwardAuth {
            mode: mode.as_str(),
        });
    }
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
}
