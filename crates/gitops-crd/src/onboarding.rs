//! The ProxyConfig a Service asks for: automatic onboarding (the service-discovery controller)
//! and `kubectl gitops onboard` derive it the same way, from the Service's ports and its
//! `authentik.io/*` annotations.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use kube::ResourceExt;

use crate::names::{DISCOVERY_LABEL, DISCOVERY_LABEL_ENABLED, service_annotations as ann};
use crate::validate::{compile_skip_path_regexes, is_valid_slug, normalize_external_host};
use crate::{AuthentikConfig, DEFAULT_SKIP_PATH_REGEX, Protocol, ProxyConfigSpec, ProxyMode};

/// The name of the ProxyConfig discovered for a Service.
pub fn proxyconfig_name(service: &str) -> String {
    format!("{service}-proxy")
}

/// Why a labelled Service gets no ProxyConfig.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error("annotation {key} is missing: it names the public host", key = ann::EXTERNAL_HOST)]
    MissingExternalHost,
    #[error("annotation {key}: {0}", key = ann::EXTERNAL_HOST)]
    ExternalHost(String),
    #[error("annotation {key} is {0:?}, which matches no port of the Service (ports: {1})", key = ann::INTERNAL_PORT)]
    UnknownPort(String, String),
    #[error("the Service has several ports and none is named http; set annotation {key} to a port name or number", key = ann::INTERNAL_PORT)]
    AmbiguousPort,
    #[error("the Service has no ports")]
    NoPorts,
    #[error("annotation {key} is {0:?}; use forward_single, forward_domain or proxy", key = ann::MODE)]
    Mode(String),
    #[error("annotation {key}: {0}", key = ann::SKIP_PATH_REGEX)]
    SkipPathRegex(String),
    #[error("annotation {key} is {0:?}; a slug may contain only letters, digits, '-' and '_' (at most 50)", key = ann::SLUG)]
    Slug(String),
    #[error("annotation {key} is empty", key = ann::PROVIDER_NAME)]
    EmptyProviderName,
}

impl AnnotationError {
    /// A stable, low-cardinality reason (metric label).
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Self::MissingExternalHost => "missing_external_host",
            Self::ExternalHost(_) => "invalid_external_host",
            Self::UnknownPort(..) | Self::AmbiguousPort | Self::NoPorts => "invalid_port",
            Self::Mode(_) => "invalid_mode",
            Self::SkipPathRegex(_) => "invalid_skip_path_regex",
            Self::Slug(_) => "invalid_slug",
            Self::EmptyProviderName => "invalid_provider_name",
        }
    }
}

/// Whether the Service opts in.
pub fn is_opted_in(service: &Service) -> bool {
    service.labels().get(DISCOVERY_LABEL).map(String::as_str) == Some(DISCOVERY_LABEL_ENABLED)
}

fn choose_port<'a>(
    service: &'a Service,
    wanted: Option<&str>,
) -> Result<&'a ServicePort, AnnotationError> {
    let ports: &[ServicePort] = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    if ports.is_empty() {
        return Err(AnnotationError::NoPorts);
    }
    match wanted.map(str::trim) {
        Some(wanted) => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(wanted) || p.port.to_string() == wanted)
            .ok_or_else(|| {
                let list: Vec<String> = ports
                    .iter()
                    .map(|p| match &p.name {
                        Some(name) => format!("{name}={}", p.port),
                        None => p.port.to_string(),
                    })
                    .collect();
                AnnotationError::UnknownPort(wanted.to_owned(), list.join(", "))
            }),
        None if ports.len() == 1 => Ok(&ports[0]),
        None => ports
            .iter()
            .find(|p| p.name.as_deref() == Some("http"))
            .ok_or(AnnotationError::AmbiguousPort),
    }
}

/// The ProxyConfig spec a Service's annotations ask for.
pub fn spec_for(service: &Service) -> Result<ProxyConfigSpec, AnnotationError> {
    let annotations = service.annotations();
    let get = |key: &str| {
        annotations
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    let name = service.name_any();
    let namespace = service.namespace().unwrap_or_default();

    let external_host = get(ann::EXTERNAL_HOST).ok_or(AnnotationError::MissingExternalHost)?;
    normalize_external_host(external_host)
        .map_err(|e| AnnotationError::ExternalHost(e.to_string()))?;
    let port = choose_port(service, get(ann::INTERNAL_PORT))?;
    let https = port.name.as_deref() == Some("https") || port.port == 443;
    let mode = match get(ann::MODE) {
        None => ProxyMode::default(),
        Some("forward_single") => ProxyMode::ForwardSingle,
        Some("forward_domain") => ProxyMode::ForwardDomain,
        Some("proxy") => ProxyMode::Proxy,
        Some(other) => return Err(AnnotationError::Mode(other.to_owned())),
    };
    let skip_path_regex = get(ann::SKIP_PATH_REGEX)
        .unwrap_or(DEFAULT_SKIP_PATH_REGEX)
        .to_owned();
    compile_skip_path_regexes(&skip_path_regex)
        .map_err(|e| AnnotationError::SkipPathRegex(e.to_string()))?;
    let application_slug = match get(ann::SLUG) {
        Some(slug) if !is_valid_slug(slug) => return Err(AnnotationError::Slug(slug.to_owned())),
        slug => slug.map(str::to_owned),
    };
    let provider_name = match annotations.get(ann::PROVIDER_NAME) {
        Some(value) if value.trim().is_empty() => return Err(AnnotationError::EmptyProviderName),
        Some(value) => value.trim().to_owned(),
        None => format!("{namespace}-{name}"),
    };
    let mut spec_annotations = BTreeMap::new();
    if let Some(description) = get(ann::DESCRIPTION) {
        spec_annotations.insert("description".to_owned(), description.to_owned());
    }
    if let Some(publisher) = get(ann::PUBLISHER) {
        spec_annotations.insert("publisher".to_owned(), publisher.to_owned());
    }
    let scheme = if https { "https" } else { "http" };
    Ok(ProxyConfigSpec {
        service_name: name.clone(),
        service_namespace: namespace.clone(),
        external_host: external_host.to_owned(),
        internal_host: format!(
            "{scheme}://{name}.{namespace}.svc.cluster.local:{}",
            port.port
        ),
        port: port.port,
        protocol: if https {
            Protocol::Https
        } else {
            Protocol::Http
        },
        authentik_config: AuthentikConfig {
            enabled: true,
            provider_name,
            mode,
            skip_path_regex,
            basic_auth_enabled: false,
            internal_host_ssl_validation: false,
            application_name: None,
            application_slug,
            launch_url: None,
            group: None,
            outpost: None,
            authorization_flow: None,
            invalidation_flow: None,
            cookie_domain: None,
            access_token_validity: None,
            intercept_header_auth: None,
            basic_auth_user_attribute: None,
            basic_auth_password_attribute: None,
            allowed_groups: None,
        },
        labels: None,
        annotations: (!spec_annotations.is_empty()).then_some(spec_annotations),
        forward_auth: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(annotations: serde_json::Value, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {
                "name": "home-assistant", "namespace": "home", "uid": "svc-uid",
                "labels": {"authentik.io/proxy": "enabled"},
                "annotations": annotations
            },
            "spec": {"ports": ports}
        }))
        .expect("service")
    }

    #[test]
    fn original_home_assistant_service_is_onboarded() {
        let svc = service(
            json!({"authentik.io/external-host": "home-assistant.example.com",
                   "authentik.io/description": "Home automation", "authentik.io/publisher": "home"}),
            json!([{"name": "http", "port": 8123}]),
        );
        assert!(is_opted_in(&svc));
        let spec = spec_for(&svc).expect("valid");
        assert_eq!(
            spec.internal_host,
            "http://home-assistant.home.svc.cluster.local:8123"
        );
        assert_eq!(spec.port, 8123);
        assert_eq!(spec.authentik_config.provider_name, "home-home-assistant");
        assert_eq!(spec.authentik_config.mode, ProxyMode::ForwardSingle);
        let annotations = spec.annotations.expect("annotations");
        assert_eq!(annotations["description"], "Home automation");
        assert_eq!(annotations["publisher"], "home");
    }

    #[test]
    fn every_annotation_is_honoured() {
        let svc = service(
            json!({"authentik.io/external-host": "https://ha.example.com",
                   "authentik.io/provider-name": "ha", "authentik.io/slug": "ha_app",
                   "authentik.io/internal-port": "web", "authentik.io/mode": "proxy",
                   "authentik.io/skip-path-regex": "^/api/websocket$"}),
            json!([{"name": "metrics", "port": 9000}, {"name": "web", "port": 443}]),
        );
        let spec = spec_for(&svc).expect("valid");
        assert_eq!(spec.authentik_config.provider_name, "ha");
        assert_eq!(
            spec.authentik_config.application_slug.as_deref(),
            Some("ha_app")
        );
        assert_eq!(spec.authentik_config.mode, ProxyMode::Proxy);
        assert_eq!(spec.authentik_config.skip_path_regex, "^/api/websocket$");
        assert_eq!(
            spec.internal_host,
            "https://home-assistant.home.svc.cluster.local:443"
        );
        assert_eq!(spec.protocol, Protocol::Https);

        let by_number = service(
            json!({"authentik.io/external-host": "ha.example.com", "authentik.io/internal-port": "9000"}),
            json!([{"name": "metrics", "port": 9000}, {"name": "web", "port": 443}]),
        );
        assert_eq!(spec_for(&by_number).expect("valid").port, 9000);
    }

    #[test]
    fn bad_annotations_say_exactly_what_is_wrong() {
        let ports = json!([{"name": "a", "port": 1}, {"name": "b", "port": 2}]);
        let table = [
            (json!({}), json!([{"port": 80}]), "external-host is missing"),
            (
                json!({"authentik.io/external-host": "http://plain.example.com"}),
                json!([{"port": 80}]),
                "external-host",
            ),
            (
                json!({"authentik.io/external-host": "x.example.com"}),
                ports.clone(),
                "several ports",
            ),
            (
                json!({"authentik.io/external-host": "x.example.com", "authentik.io/internal-port": "c"}),
                ports.clone(),
                "\"c\", which matches no port",
            ),
            (
                json!({"authentik.io/external-host": "x.example.com", "authentik.io/mode": "forward"}),
                json!([{"port": 80}]),
                "forward_single, forward_domain or proxy",
            ),
            (
                json!({"authentik.io/external-host": "x.example.com", "authentik.io/skip-path-regex": "(("}),
                json!([{"port": 80}]),
                "skip-path-regex",
            ),
            (
                json!({"authentik.io/external-host": "x.example.com", "authentik.io/slug": "no spaces"}),
                json!([{"port": 80}]),
                "slug",
            ),
            (
                json!({"authentik.io/external-host": "x.example.com", "authentik.io/provider-name": " "}),
                json!([{"port": 80}]),
                "provider-name is empty",
            ),
            (
                json!({"authentik.io/external-host": "x.example.com"}),
                json!([]),
                "no ports",
            ),
        ];
        for (annotations, ports, expected) in table {
            let error = spec_for(&service(annotations.clone(), ports))
                .expect_err("rejected")
                .to_string();
            assert!(error.contains(expected), "{annotations}: {error}");
        }
    }
}
