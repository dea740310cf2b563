//! The `ProxyConfig` custom resource (`proxyconfigs.gitops.io/v1`).
//!
//! Field names, defaults and enums follow the original system's manifests so that they apply
//! unchanged. Everything the API server can check lives in the schema (types, enums, ranges,
//! lengths, patterns, CEL rules); what it cannot check is in [`crate::validate`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state: "service X is reachable at `externalHost`, protected by authentik".
// Each printcolumn(...) repeats `type_ = "string"`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gitops.io",
    version = "v1",
    kind = "ProxyConfig",
    plural = "proxyconfigs",
    singular = "proxyconfig",
    shortname = "pcfg",
    category = "gitops",
    namespaced,
    status = "ProxyConfigStatus",
    derive = "PartialEq",
    doc = "ProxyConfig declares that a Service is published at an external host behind authentik forward-auth.",
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.serviceName"),
    printcolumn(
        name = "Namespace",
        type_ = "string",
        json_path = ".spec.serviceNamespace"
    ),
    printcolumn(
        name = "External Host",
        type_ = "string",
        json_path = ".spec.externalHost"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfigSpec {
    /// Name of the Service this ProxyConfig publishes.
    #[x_kube(validation = Rule::new("self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("serviceName must be a Service name: lowercase letters, digits and '-', starting with a letter"))]
    #[schemars(length(min = 1, max = 63))]
    pub service_name: String,

    /// Namespace of that Service. Other namespaces than the ProxyConfig's own need an allowlist
    /// entry in the controller configuration.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("serviceNamespace must be a namespace name: lowercase letters, digits and '-'"))]
    #[schemars(length(min = 1, max = 63))]
    pub service_namespace: String,

    /// Public host name, bare (`grafana.example.com`, https:// is added) or as an https URL.
    #[x_kube(validation = Rule::new("self.matches('^(https://)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[^\\\\s]*)?$')").message("externalHost must be a host name such as grafana.example.com or an https:// URL"))]
    #[schemars(length(min = 1, max = 253))]
    pub external_host: String,

    /// URL authentik's outpost forwards to, e.g. `http://grafana.monitoring.svc.cluster.local:3000`.
    #[x_kube(validation = Rule::new("self.matches('^https?://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[^\\\\s]*)?$')").message("internalHost must be an http:// or https:// URL such as http://grafana.monitoring.svc.cluster.local:3000"))]
    #[schemars(length(min = 1, max = 2048))]
    pub internal_host: String,

    /// Service port the internal host points at.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Scheme of the internal service.
    #[serde(default)]
    pub protocol: Protocol,

    /// How the service is wired into authentik.
    pub authentik_config: AuthentikConfig,

    /// Free-form labels, copied to what the controller creates where authentik allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 64))]
    pub labels: Option<BTreeMap<String, String>>,

    /// Free-form annotations; `description` becomes the application's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 64))]
    pub annotations: Option<BTreeMap<String, String>>,

    /// The reverse proxy's half of forward auth, created and kept by the controller (optional:
    /// without it the proxy is wired by hand, as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_auth: Option<ForwardAuth>,
}

/// The reverse-proxy wiring that sends each request to the authentik outpost first.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.traefik) || has(self.httpRoute)").message("forwardAuth must name the proxy to wire: set forwardAuth.traefik (traefik: {} for the defaults) and/or forwardAuth.httpRoute"))]
#[x_kube(validation = Rule::new("!has(self.httpRoute) || !has(self.httpRoute.filter) || self.httpRoute.filter != 'ExtensionRef' || has(self.traefik)").message("forwardAuth.httpRoute.filter ExtensionRef names the Traefik Middleware this ProxyConfig keeps: set forwardAuth.traefik too (traefik: {} for the defaults)"))]
pub struct ForwardAuth {
    /// A Traefik `Middleware` (traefik.io/v1alpha1) with `forwardAuth` to the outpost, in the
    /// ProxyConfig's namespace, owned by the ProxyConfig. Routes name it in their `middlewares`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traefik: Option<TraefikForwardAuth>,

    /// A Gateway API `HTTPRoute` in the ProxyConfig's namespace whose every rule gets a filter
    /// sending requests to the outpost first: an `ExternalAuth` filter (GEP-1494, experimental
    /// channel) by default, or an `ExtensionRef` to the Traefik Middleware of `traefik`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route: Option<HttpRouteForwardAuth>,
}

/// The HTTPRoute the controller adds its filter to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteForwardAuth {
    /// Name of the HTTPRoute (in the ProxyConfig's namespace).
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')").message("forwardAuth.httpRoute.name must be an object name: lowercase letters, digits, '-' and '.'"))]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// The filter added to every rule (see [`RouteFilterKind`]); `ExternalAuth` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<RouteFilterKind>,
}

impl HttpRouteForwardAuth {
    /// The filter kind asked for, `ExternalAuth` when none is given.
    pub fn filter_kind(&self) -> RouteFilterKind {
        self.filter.unwrap_or_default()
    }
}

/// The filter added to every rule of the HTTPRoute: `ExternalAuth` (the default; Gateway API's
/// GEP-1494 filter, for Envoy Gateway, Cilium, NGINX Gateway Fabric and others that implement
/// it) or `ExtensionRef` (a reference to the Traefik Middleware of `forwardAuth.traefik`, for
/// Traefik's Gateway API provider, which has no ExternalAuth filter).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum RouteFilterKind {
    /// Gateway API's `ExternalAuth` filter (GEP-1494) to the outpost's Service.
    #[default]
    ExternalAuth,
    /// An `ExtensionRef` filter naming the Traefik Middleware this ProxyConfig keeps.
    ExtensionRef,
}

impl RouteFilterKind {
    /// The value the manifests use (and Gateway API's filter `type`).
    pub fn as_str(self) -> &'static str {
        match self {
            RouteFilterKind::ExternalAuth => "ExternalAuth",
            RouteFilterKind::ExtensionRef => "ExtensionRef",
        }
    }
}

/// The Traefik `Middleware` the controller keeps.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TraefikForwardAuth {
    /// Name of the Middleware; defaults to the ProxyConfig's name followed by `-authentik`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("forwardAuth.traefik.middlewareName must be a lowercase name: letters, digits and '-'"))]
    #[schemars(length(min = 1, max = 63))]
    pub middleware_name: Option<String>,
}

/// Scheme of the internal service.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Http,
    Https,
}

/// authentik proxy provider mode.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ProxyMode {
    /// Forward auth for a single application host.
    #[default]
    ForwardSingle,
    /// Forward auth for a whole domain (use with `cookieDomain`).
    ForwardDomain,
    /// authentik's outpost proxies the traffic itself.
    Proxy,
}

impl ProxyMode {
    /// The value authentik and the manifests use.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::ForwardSingle => "forward_single",
            ProxyMode::ForwardDomain => "forward_domain",
            ProxyMode::Proxy => "proxy",
        }
    }
}

/// How the service is wired into authentik.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthentikConfig {
    /// `false` makes sure nothing exists in authentik for this ProxyConfig.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Name of the proxy provider (unique across all authentik providers).
    #[x_kube(validation = Rule::new("self.trim() == self").message("providerName must not start or end with whitespace"))]
    #[schemars(length(min = 1, max = 255))]
    pub provider_name: String,

    /// Proxy provider mode.
    #[serde(default)]
    pub mode: ProxyMode,

    /// Paths that skip authentication, one regular expression per line.
    #[serde(default = "default_skip_path_regex")]
    #[schemars(length(max = 4096))]
    pub skip_path_regex: String,

    /// Send HTTP basic auth credentials from user attributes to the service.
    #[serde(default)]
    pub basic_auth_enabled: bool,

    /// Validate the internal service's TLS certificate.
    #[serde(default)]
    pub internal_host_ssl_validation: bool,

    /// Application name shown to users; defaults to the provider name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub application_name: Option<String>,

    /// Application slug; defaults to one derived from namespace and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[-a-zA-Z0-9_]+$')").message("applicationSlug may contain only letters, digits, '-' and '_'"))]
    #[schemars(length(min = 1, max = 50))]
    pub application_slug: Option<String>,

    /// Launch URL in authentik's application library; defaults to the external host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^\\\\s]+$')").message("launchUrl must be an http:// or https:// URL"))]
    #[schemars(length(max = 2048))]
    pub launch_url: Option<String>,

    /// Application group in authentik's library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub group: Option<String>,

    /// Outpost (name or UUID) that serves this provider; defaults to the controller's setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub outpost: Option<String>,

    /// Authorization flow (slug or UUID); defaults to the controller's setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub authorization_flow: Option<String>,

    /// Invalidation flow (slug or UUID); defaults to the controller's setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub invalidation_flow: Option<String>,

    /// Cookie domain, used with `forward_domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub cookie_domain: Option<String>,

    /// Token validity in authentik's format, e.g. `hours=1` or `days=1;hours=2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^((weeks|days|hours|minutes|seconds|milliseconds|microseconds)=[0-9]+(\\\\.[0-9]+)?;?)+$')").message("accessTokenValidity must look like hours=1 or days=1;hours=2"))]
    #[schemars(length(min = 1, max = 128))]
    pub access_token_validity: Option<String>,

    /// Let the outpost authenticate requests that carry an Authorization header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intercept_header_auth: Option<bool>,

    /// User attribute holding the basic auth user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub basic_auth_user_attribute: Option<String>,

    /// User attribute holding the basic auth password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub basic_auth_password_attribute: Option<String>,

    /// authentik groups whose members may use the application (policy bindings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 255)))]
    pub allowed_groups: Option<Vec<String>>,
}

/// Observed state, written by the service-discovery controller through the status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfigStatus {
    /// Pending, Ready or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// `Ready` plus one condition per reconcile step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// pk of the proxy provider this ProxyConfig owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentik_provider_id: Option<i64>,

    /// Slug of the application this ProxyConfig owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_slug: Option<String>,

    /// UUID of the outpost that serves the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outpost_id: Option<String>,

    /// The authentik version the controller last talked to (`version_current` of
    /// `/api/v3/admin/version/`), as the server reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentik_version: Option<String>,

    /// Routes (`Kind namespace/name`) that serve the external host without forward auth to the
    /// outpost, as the `Protected` condition found them (empty when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_routes: Vec<String>,

    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// When the controller last checked authentik against the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconciled: Option<Time>,
}

/// Coarse state of a ProxyConfig.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum Phase {
    /// Not yet converged, or waiting on something transient.
    Pending,
    /// authentik matches the spec.
    Ready,
    /// Needs a human: invalid spec, conflict, rejected by authentik.
    Failed,
}

impl Phase {
    /// Every phase, for metrics that export one series per phase.
    pub const ALL: [Phase; 3] = [Phase::Pending, Phase::Ready, Phase::Failed];

    /// The value written to `status.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Ready => "Ready",
            Phase::Failed => "Failed",
        }
    }
}

fn default_port() -> i32 {
    80
}

fn default_true() -> bool {
    true
}

/// The original system's default: API paths skip authentication.
pub const DEFAULT_SKIP_PATH_REGEX: &str = "^/api/.*$";

fn default_skip_path_regex() -> String {
    DEFAULT_SKIP_PATH_REGEX.to_owned()
}
