//! The service-discovery controller's defaults (flows, outpost, cookie domain), read from its
//! Deployment, so that `verify` and `report` compare ProxyConfigs with what the controller
//! actually applies rather than with the built-in defaults.

use gitops_crd::names::{DEFAULT_AUTHORIZATION_FLOW, DEFAULT_INVALIDATION_FLOW, DEFAULT_OUTPOST};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use kube::Api;
use serde::Serialize;

/// The settings a ProxyConfig that names no flow, outpost or cookie domain gets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ControllerDefaults {
    pub authorization_flow: String,
    pub invalidation_flow: String,
    pub outpost: String,
    pub cookie_domain: Option<String>,
    /// Where these came from, or why some are assumed.
    pub source: String,
}

impl ControllerDefaults {
    /// The controller's own defaults, used when it sets nothing else.
    pub fn built_in(source: String) -> Self {
        Self {
            authorization_flow: DEFAULT_AUTHORIZATION_FLOW.to_owned(),
            invalidation_flow: DEFAULT_INVALIDATION_FLOW.to_owned(),
            outpost: DEFAULT_OUTPOST.to_owned(),
            cookie_domain: None,
            source,
        }
    }

    /// As the controller container's environment sets them. Values from `valueFrom` or
    /// `envFrom` (Secrets, e.g. the chart's ExternalSecret) cannot be read here: the source says
    /// which settings were assumed.
    pub fn from_container(deployment: &str, container: &Container) -> Self {
        let mut unreadable = Vec::new();
        let mut setting = |name: &'static str| match env_value(container, name) {
            Setting::Value(value) => Some(value),
            Setting::Unreadable => {
                unreadable.push(name);
                None
            }
            Setting::Unset => None,
        };
        let mut defaults = Self {
            authorization_flow: setting("DEFAULT_AUTHORIZATION_FLOW")
                .unwrap_or_else(|| DEFAULT_AUTHORIZATION_FLOW.to_owned()),
            invalidation_flow: setting("DEFAULT_INVALIDATION_FLOW")
                .unwrap_or_else(|| DEFAULT_INVALIDATION_FLOW.to_owned()),
            outpost: setting("DEFAULT_OUTPOST").unwrap_or_else(|| DEFAULT_OUTPOST.to_owned()),
            cookie_domain: setting("COOKIE_DOMAIN").filter(|v| !v.is_empty()),
            source: format!("Deployment {deployment}"),
        };
        if !unreadable.is_empty() {
            defaults.source.push_str(&format!(
                "; {} may be set from a Secret, assumed the built-in default",
                unreadable.join(", ")
            ));
        }
        defaults
    }
}

enum Setting {
    Value(String),
    /// From `valueFrom` or possibly from `envFrom`: not readable from the Deployment.
    Unreadable,
    Unset,
}

fn env_value(container: &Container, name: &str) -> Setting {
    // Kubernetes lets the last entry of a name win, and `env` over `envFrom`.
    let entry = container
        .env
        .iter()
        .flatten()
        .rev()
        .find(|e| e.name == name);
    match entry {
        Some(entry) if entry.value_from.is_none() => {
            Setting::Value(entry.value.clone().unwrap_or_default())
        }
        Some(_) => Setting::Unreadable,
        None if container.env_from.as_ref().is_some_and(|f| !f.is_empty()) => Setting::Unreadable,
        None => Setting::Unset,
    }
}

/// Reads the defaults from the release's service-discovery Deployment (the chart's naming
/// contract); the built-in defaults when it cannot be read, saying why.
pub async fn read(client: &kube::Client, namespace: &str, release: &str) -> ControllerDefaults {
    let name = format!("{release}-service-discovery");
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let container = match api.get_opt(&name).await {
        Ok(Some(deployment)) => deployment
            .spec
            .template
            .spec
            .and_then(|pod| pod.containers.into_iter().next()),
        Ok(None) => {
            return ControllerDefaults::built_in(format!(
                "built-in: Deployment {namespace}/{name} not found (see --release, --release-namespace)"
            ));
        }
        Err(error) => {
            return ControllerDefaults::built_in(format!(
                "built-in: Deployment {namespace}/{name} could not be read: {}",
                crate::error::describe_kube(&error)
            ));
        }
    };
    match container {
        Some(container) => {
            ControllerDefaults::from_container(&format!("{namespace}/{name}"), &container)
        }
        None => ControllerDefaults::built_in(format!(
            "built-in: Deployment {namespace}/{name} has no container"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(value: serde_json::Value) -> Container {
        serde_json::from_value(value).expect("a container")
    }

    #[test]
    fn plain_values_are_what_the_controller_uses() {
        let defaults = ControllerDefaults::from_container(
            "flux-system/glm-service-discovery",
            &container(json!({"name": "c", "env": [
                {"name": "DEFAULT_OUTPOST", "value": "first"},
                {"name": "DEFAULT_AUTHORIZATION_FLOW", "value": "explicit-consent"},
                {"name": "COOKIE_DOMAIN", "value": "example.com"},
                {"name": "DEFAULT_OUTPOST", "value": "lan-outpost"}
            ]})),
        );
        assert_eq!(defaults.authorization_flow, "explicit-consent");
        assert_eq!(defaults.invalidation_flow, DEFAULT_INVALIDATION_FLOW);
        assert_eq!(defaults.outpost, "lan-outpost", "the last entry wins");
        assert_eq!(defaults.cookie_domain.as_deref(), Some("example.com"));
        assert_eq!(
            defaults.source,
            "Deployment flux-system/glm-service-discovery"
        );
    }

    #[test]
    fn settings_from_secrets_are_assumed_and_said_so() {
        let defaults = ControllerDefaults::from_container(
            "ns/d",
            &container(json!({"name": "c",
                "env": [{"name": "COOKIE_DOMAIN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                "envFrom": [{"secretRef": {"name": "settings"}}]
            })),
        );
        assert_eq!(defaults.outpost, DEFAULT_OUTPOST);
        assert_eq!(defaults.cookie_domain, None);
        assert!(
            defaults.source.contains(
                "DEFAULT_AUTHORIZATION_FLOW, DEFAULT_INVALIDATION_FLOW, DEFAULT_OUTPOST, COOKIE_DOMAIN may be set from a Secret"
            ),
            "{}",
            defaults.source
        );
    }
}
