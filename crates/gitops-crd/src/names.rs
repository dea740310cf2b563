//! Names shared by the controllers, the chart and the CLI: one place, so they cannot drift.

/// API group of the ProxyConfig resource.
pub const API_GROUP: &str = "gitops.io";

/// Finalizer the service-discovery controller puts on every ProxyConfig it reconciles.
pub const FINALIZER: &str = "gitops.io/authentik-cleanup";

/// Annotation: `"true"` lets the controller take over a pre-existing authentik provider or
/// application of the same name that this product did not create.
pub const ADOPT_ANNOTATION: &str = "gitops.io/adopt";

/// Annotation: `"true"` releases the finalizer without touching authentik (e.g. authentik is
/// gone for good).
pub const SKIP_AUTHENTIK_CLEANUP_ANNOTATION: &str = "gitops.io/skip-authentik-cleanup";

/// Annotation on a Job or Pod: `"false"` keeps the cleanup controller away from it.
pub const CLEANUP_ANNOTATION: &str = "gitops.io/cleanup";

/// Label a Service carries to opt in to automatic onboarding.
pub const DISCOVERY_LABEL: &str = "authentik.io/proxy";
/// Value of [`DISCOVERY_LABEL`] that opts in.
pub const DISCOVERY_LABEL_ENABLED: &str = "enabled";

/// Label on ProxyConfigs created by automatic onboarding, naming the Service they come from.
pub const DISCOVERED_FROM_LABEL: &str = "gitops.io/discovered-from";

/// Service annotations read by automatic onboarding.
pub mod service_annotations {
    pub const EXTERNAL_HOST: &str = "authentik.io/external-host";
    pub const PROVIDER_NAME: &str = "authentik.io/provider-name";
    pub const SLUG: &str = "authentik.io/slug";
    pub const INTERNAL_PORT: &str = "authentik.io/internal-port";
    pub const DESCRIPTION: &str = "authentik.io/description";
    pub const PUBLISHER: &str = "authentik.io/publisher";
    pub const MODE: &str = "authentik.io/mode";
    pub const SKIP_PATH_REGEX: &str = "authentik.io/skip-path-regex";
}

/// Label on every reverse-proxy object the controller creates for a ProxyConfig (a Traefik
/// Middleware): the ProxyConfig's name, to find them again; the ownerReference says which one.
pub const PROXYCONFIG_LABEL: &str = "gitops.io/proxyconfig";

/// Recommended labels on everything the product creates in Kubernetes.
pub mod labels {
    pub const NAME: &str = "app.kubernetes.io/name";
    pub const COMPONENT: &str = "app.kubernetes.io/component";
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// Value of [`NAME`] for this product.
    pub const PRODUCT: &str = "gitops-lifecycle-management";
}

/// Authorization flow (slug) of ProxyConfigs that name none, unless the controller is configured
/// otherwise.
pub const DEFAULT_AUTHORIZATION_FLOW: &str = "default-provider-authorization-implicit-consent";
/// Invalidation flow (slug) of ProxyConfigs that name none, unless configured otherwise.
pub const DEFAULT_INVALIDATION_FLOW: &str = "default-provider-invalidation-flow";
/// Outpost of ProxyConfigs that name none: authentik's embedded outpost.
pub const DEFAULT_OUTPOST: &str = "embedded";

/// Field manager for server-side apply by the service-discovery controller.
pub const SERVICE_DISCOVERY_MANAGER: &str = "gitops-service-discovery";
/// Field manager for server-side apply by the cleanup controller.
pub const CLEANUP_MANAGER: &str = "gitops-cleanup";

/// Condition types on a ProxyConfig, in the order the reconcile steps set them.
pub mod condition_types {
    pub const READY: &str = "Ready";
    pub const SERVICE_RESOLVED: &str = "ServiceResolved";
    pub const PROVIDER_SYNCED: &str = "ProviderSynced";
    pub const APPLICATION_SYNCED: &str = "ApplicationSynced";
    pub const OUTPOST_ASSIGNED: &str = "OutpostAssigned";
    /// Whether the authentik server's version is in the supported range (False with reason
    /// `UnsupportedAuthentikVersion` or `UnknownAuthentikVersion`; the controller keeps going).
    pub const AUTHENTIK_VERSION_SUPPORTED: &str = "AuthentikVersionSupported";
    /// Whether the reverse-proxy wiring `spec.forwardAuth` asks for exists (only on ProxyConfigs
    /// that ask for it).
    pub const FORWARD_AUTH_READY: &str = "ForwardAuthReady";
    /// Whether every route serving the external host sends requests through forward auth to
    /// the outpost (False with reason `RouteWithoutForwardAuth` names the exposed routes;
    /// Unknown when no route serves the host). Set on Ready ProxyConfigs.
    pub const PROTECTED: &str = "Protected";
}
