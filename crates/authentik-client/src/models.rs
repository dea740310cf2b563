//! Request and response types for the endpoints the client covers.
//!
//! Response types ignore unknown fields, and every field the schema does not mark required, or
//! that appeared or changed between authentik 2024.10 and 2026.8, is `Option` (or an empty
//! `Vec`) with `#[serde(default)]`, so one build decodes every version in that range.

use serde::{Deserialize, Serialize};

/// A paginated list envelope (`Paginated*List`). `autocomplete` (2025.8+) is ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Paginated<T> {
    /// Page numbers and counts.
    pub pagination: Pagination,
    /// The items of this page.
    pub results: Vec<T>,
}

/// authentik's pagination block. The API types every field as a JSON number, so they are
/// decoded as `f64` whether the server writes `2` or `2.0`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Pagination {
    /// The next page number; `0` when this is the last page.
    pub next: f64,
    /// The previous page number; `0` on the first page.
    #[serde(default)]
    pub previous: f64,
    /// Total number of items.
    #[serde(default)]
    pub count: f64,
    /// This page's number.
    #[serde(default)]
    pub current: f64,
    /// Number of pages.
    #[serde(default)]
    pub total_pages: f64,
}

impl Pagination {
    /// The next page to fetch, or `None` at the end.
    pub fn next_page(&self) -> Option<u32> {
        // Page numbers are small positive integers; anything else ends the iteration.
        (self.next >= 1.0 && self.next <= f64::from(u32::MAX)).then_some(self.next as u32)
    }
}

/// Proxy provider `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyMode {
    /// Full reverse proxy; needs `internal_host`. The server's default.
    #[default]
    Proxy,
    /// Forward auth for a single application.
    ForwardSingle,
    /// Forward auth for a whole domain (`cookie_domain`).
    ForwardDomain,
    /// A mode this client does not know (a newer server); never sent.
    #[serde(other, skip_serializing)]
    Unknown,
}

/// Application `policy_engine_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyEngineMode {
    /// Every binding must pass.
    All,
    /// Any binding may pass (what this product sends for `allowedGroups`).
    #[default]
    Any,
    /// A mode this client does not know (a newer server); never sent.
    #[serde(other, skip_serializing)]
    Unknown,
}

/// Flow `designation` values used for lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowDesignation {
    /// `authentication`
    Authentication,
    /// `authorization`: a proxy provider's `authorization_flow`.
    Authorization,
    /// `invalidation`: a proxy provider's `invalidation_flow`.
    Invalidation,
}

impl FlowDesignation {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Authorization => "authorization",
            Self::Invalidation => "invalidation",
        }
    }
}

/// A flow (`/flows/instances/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Flow {
    /// The flow's UUID: the value for `authorization_flow` / `invalidation_flow`.
    pub pk: String,
    /// Unique slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// `authorization`, `invalidation`, ...
    pub designation: String,
}

/// A proxy provider as the server returns it (`/providers/proxy/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProxyProvider {
    /// Numeric id.
    pub pk: i64,
    /// Name, unique across all provider types.
    pub name: String,
    /// Authorization flow UUID.
    pub authorization_flow: String,
    /// Invalidation flow UUID (required from 2024.10; absent before).
    #[serde(default)]
    pub invalidation_flow: Option<String>,
    /// Authentication flow UUID; `None` means the brand's default.
    #[serde(default)]
    pub authentication_flow: Option<String>,
    /// The public URL.
    pub external_host: String,
    /// The upstream URL (`proxy` mode).
    #[serde(default)]
    pub internal_host: Option<String>,
    /// Whether the upstream's TLS certificate is checked.
    #[serde(default)]
    pub internal_host_ssl_validation: Option<bool>,
    /// Regexes (one per line) of paths that skip authentication.
    #[serde(default)]
    pub skip_path_regex: Option<String>,
    /// Whether HTTP basic auth is sent upstream.
    #[serde(default)]
    pub basic_auth_enabled: Option<bool>,
    /// User attribute holding the basic-auth user.
    #[serde(default)]
    pub basic_auth_user_attribute: Option<String>,
    /// User attribute holding the basic-auth password.
    #[serde(default)]
    pub basic_auth_password_attribute: Option<String>,
    /// Proxy mode.
    #[serde(default)]
    pub mode: Option<ProxyMode>,
    /// Whether an `Authorization` header is intercepted.
    #[serde(default)]
    pub intercept_header_auth: Option<bool>,
    /// Cookie domain (`forward_domain`).
    #[serde(default)]
    pub cookie_domain: Option<String>,
    /// Access token validity, e.g. `hours=1`.
    #[serde(default)]
    pub access_token_validity: Option<String>,
    /// Refresh token validity, e.g. `days=30`.
    #[serde(default)]
    pub refresh_token_validity: Option<String>,
    /// TLS certificate keypair UUID.
    #[serde(default)]
    pub certificate: Option<String>,
    /// Property mapping UUIDs. The server adds its managed scope mappings on every write, so
    /// this is a superset of what was sent.
    #[serde(default)]
    pub property_mappings: Vec<String>,
    /// Slug of the bound application; `None` when unbound.
    #[serde(default)]
    pub assigned_application_slug: Option<String>,
    /// Name of the bound application; `None` when unbound.
    #[serde(default)]
    pub assigned_application_name: Option<String>,
    /// **Names** of the outposts serving this provider.
    #[serde(default)]
    pub outpost_set: Vec<String>,
}

/// The writable fields of a proxy provider, for create (POST) and full update (PUT).
///
/// `invalidation_flow` is always sent (required since 2024.10; older servers ignore it).
/// `property_mappings`, `access_token_validity` and `refresh_token_validity` are sent only when
/// set, so the server keeps its defaults and its managed mappings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyProviderRequest {
    /// Name, unique across all provider types.
    pub name: String,
    /// Authorization flow UUID.
    pub authorization_flow: String,
    /// Invalidation flow UUID.
    pub invalidation_flow: String,
    /// Authentication flow UUID; `None` sends `null` (the brand's default).
    pub authentication_flow: Option<String>,
    /// The public URL.
    pub external_host: String,
    /// The upstream URL; required in practice when `mode` is `proxy`.
    pub internal_host: String,
    /// Whether the upstream's TLS certificate is checked.
    pub internal_host_ssl_validation: bool,
    /// Regexes (one per line) of paths that skip authentication.
    pub skip_path_regex: String,
    /// Whether HTTP basic auth is sent upstream; needs both attributes below.
    pub basic_auth_enabled: bool,
    /// User attribute holding the basic-auth user.
    pub basic_auth_user_attribute: String,
    /// User attribute holding the basic-auth password.
    pub basic_auth_password_attribute: String,
    /// Proxy mode (always sent: the server validates a missing mode as `proxy`).
    pub mode: ProxyMode,
    /// Whether an `Authorization` header is intercepted.
    pub intercept_header_auth: bool,
    /// Cookie domain (`forward_domain`).
    pub cookie_domain: String,
    /// TLS certificate keypair UUID; `None` sends `null`.
    pub certificate: Option<String>,
    /// Access token validity (`hours=1;minutes=2`); server default when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_validity: Option<String>,
    /// Refresh token validity; server default when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token_validity: Option<String>,
    /// Property mapping UUIDs; not sent when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property_mappings: Option<Vec<String>>,
}

impl ProxyProviderRequest {
    /// A request with the required fields and the server's model defaults for the rest
    /// (`proxy` mode, TLS validation and header interception on, everything else empty).
    pub fn new(
        name: impl Into<String>,
        authorization_flow: impl Into<String>,
        invalidation_flow: impl Into<String>,
        external_host: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            authorization_flow: authorization_flow.into(),
            invalidation_flow: invalidation_flow.into(),
            authentication_flow: None,
            external_host: external_host.into(),
            internal_host: String::new(),
            internal_host_ssl_validation: true,
            skip_path_regex: String::new(),
            basic_auth_enabled: false,
            basic_auth_user_attribute: String::new(),
            basic_auth_password_attribute: String::new(),
            mode: ProxyMode::Proxy,
            intercept_header_auth: true,
            cookie_domain: String::new(),
            certificate: None,
            access_token_validity: None,
            refresh_token_validity: None,
            property_mappings: None,
        }
    }
}

/// A partial update of a proxy provider (PATCH). Only `Some` fields are sent.
///
/// `mode` is mandatory because the server validates a PATCH without `mode` as if the mode were
/// `proxy`, which fails unless `internal_host` is in the same PATCH. With `mode: Proxy`, also
/// send `internal_host`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyProviderPatch {
    /// Proxy mode (always sent).
    pub mode: ProxyMode,
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New authorization flow UUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_flow: Option<String>,
    /// New invalidation flow UUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalidation_flow: Option<String>,
    /// New authentication flow: `Some(None)` sends `null` (brand default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_flow: Option<Option<String>>,
    /// New public URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_host: Option<String>,
    /// New upstream URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_host: Option<String>,
    /// New TLS validation setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_host_ssl_validation: Option<bool>,
    /// New skip-path regexes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_path_regex: Option<String>,
    /// New basic-auth setting; send both attributes with `true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth_enabled: Option<bool>,
    /// New basic-auth user attribute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth_user_attribute: Option<String>,
    /// New basic-auth password attribute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth_password_attribute: Option<String>,
    /// New header interception setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intercept_header_auth: Option<bool>,
    /// New cookie domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie_domain: Option<String>,
    /// New certificate: `Some(None)` sends `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Option<String>>,
    /// New access token validity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_validity: Option<String>,
    /// New refresh token validity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token_validity: Option<String>,
}

impl ProxyProviderPatch {
    /// A patch that only restates `mode`; set the fields to change on it.
    pub fn new(mode: ProxyMode) -> Self {
        Self {
            mode,
            name: None,
            authorization_flow: None,
            invalidation_flow: None,
            authentication_flow: None,
            external_host: None,
            internal_host: None,
            internal_host_ssl_validation: None,
            skip_path_regex: None,
            basic_auth_enabled: None,
            basic_auth_user_attribute: None,
            basic_auth_password_attribute: None,
            intercept_header_auth: None,
            cookie_domain: None,
            certificate: None,
            access_token_validity: None,
            refresh_token_validity: None,
        }
    }
}

/// Any provider, as listed by `/providers/all/` (used to find who holds a name).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProviderSummary {
    /// Numeric id.
    pub pk: i64,
    /// Name, unique across all provider types.
    pub name: String,
    /// UI form component, e.g. `ak-provider-oauth2-form`.
    #[serde(default)]
    pub component: Option<String>,
    /// Human type name, e.g. `OAuth2/OpenID Provider`.
    #[serde(default)]
    pub verbose_name: Option<String>,
    /// Model, e.g. `authentik_providers_proxy.proxyprovider`.
    #[serde(default)]
    pub meta_model_name: Option<String>,
    /// Slug of the bound application, if any.
    #[serde(default)]
    pub assigned_application_slug: Option<String>,
}

impl ProviderSummary {
    /// Model name of proxy providers in `meta_model_name`.
    pub const PROXY_MODEL: &'static str = "authentik_providers_proxy.proxyprovider";

    /// True when this is a proxy provider.
    pub fn is_proxy(&self) -> bool {
        self.meta_model_name.as_deref() == Some(Self::PROXY_MODEL)
    }
}

/// An application (`/core/applications/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Application {
    /// UUID; the `target` of policy bindings.
    pub pk: String,
    /// Display name (not unique).
    pub name: String,
    /// Unique slug.
    pub slug: String,
    /// Bound provider's pk.
    #[serde(default)]
    pub provider: Option<i64>,
    /// Launch URL override; empty means the provider's.
    #[serde(default)]
    pub meta_launch_url: Option<String>,
    /// Description shown in the library.
    #[serde(default)]
    pub meta_description: Option<String>,
    /// Publisher shown in the library.
    #[serde(default)]
    pub meta_publisher: Option<String>,
    /// Group shown in the library.
    #[serde(default)]
    pub group: Option<String>,
    /// Whether the library opens it in a new tab.
    #[serde(default)]
    pub open_in_new_tab: Option<bool>,
    /// How policy bindings combine.
    #[serde(default)]
    pub policy_engine_mode: Option<PolicyEngineMode>,
    /// The effective launch URL.
    #[serde(default)]
    pub launch_url: Option<String>,
}

/// The writable fields of an application this product manages, for create (POST) and full
/// update (PUT). Every field is sent; `provider: None` sends `null` (unbinds).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ApplicationRequest {
    /// Display name.
    pub name: String,
    /// Unique slug (`^[-a-zA-Z0-9_]+$`).
    pub slug: String,
    /// Provider pk to bind (one application per provider).
    pub provider: Option<i64>,
    /// Launch URL override; empty means the provider's.
    pub meta_launch_url: String,
    /// Description shown in the library.
    pub meta_description: String,
    /// Publisher shown in the library.
    pub meta_publisher: String,
    /// Group shown in the library.
    pub group: String,
    /// Whether the library opens it in a new tab.
    pub open_in_new_tab: bool,
    /// How policy bindings combine.
    pub policy_engine_mode: PolicyEngineMode,
}

/// A partial update of an application (PATCH). Only `Some` fields are sent.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ApplicationPatch {
    /// New display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New provider: `Some(None)` sends `null` (unbinds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Option<i64>>,
    /// New launch URL override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_launch_url: Option<String>,
    /// New description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_description: Option<String>,
    /// New publisher.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_publisher: Option<String>,
    /// New group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// New new-tab setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_in_new_tab: Option<bool>,
    /// New policy engine mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_engine_mode: Option<PolicyEngineMode>,
}

/// A group (`/core/groups/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Group {
    /// UUID; the `group` of policy bindings.
    pub pk: String,
    /// Numeric id.
    #[serde(default)]
    pub num_pk: Option<i64>,
    /// Name.
    pub name: String,
}

/// A policy binding (`/policies/bindings/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PolicyBinding {
    /// UUID.
    pub pk: String,
    /// The bound object's UUID (an application's `pk`).
    pub target: String,
    /// Bound group UUID, for group bindings.
    #[serde(default)]
    pub group: Option<String>,
    /// Bound policy UUID, for policy bindings.
    #[serde(default)]
    pub policy: Option<String>,
    /// Bound user pk, for user bindings.
    #[serde(default)]
    pub user: Option<i64>,
    /// Evaluation order.
    pub order: i64,
    /// Whether the binding is evaluated.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Whether the result is negated.
    #[serde(default)]
    pub negate: Option<bool>,
    /// Evaluation timeout in seconds.
    #[serde(default)]
    pub timeout: Option<i64>,
}

/// A group binding to create. The server does not de-duplicate: list the target's bindings
/// first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyBindingRequest {
    /// The application's `pk`.
    pub target: String,
    /// The group's `pk`.
    pub group: String,
    /// Evaluation order.
    pub order: i64,
    /// Whether the binding is evaluated.
    pub enabled: bool,
    /// Whether the result is negated.
    pub negate: bool,
    /// Evaluation timeout in seconds.
    pub timeout: i64,
}

impl PolicyBindingRequest {
    /// An enabled, non-negated binding of `group` to `target` with the server's 30 s timeout.
    pub fn group(target: impl Into<String>, group: impl Into<String>, order: i64) -> Self {
        Self {
            target: target.into(),
            group: group.into(),
            order,
            enabled: true,
            negate: false,
            timeout: 30,
        }
    }
}

/// An outpost (`/outposts/instances/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Outpost {
    /// UUID.
    pub pk: String,
    /// Unique name.
    pub name: String,
    /// `proxy`, `ldap`, `radius`, `rac`.
    #[serde(rename = "type")]
    pub outpost_type: String,
    /// pks of the providers it serves.
    pub providers: Vec<i64>,
    /// `goauthentik.io/outposts/embedded` for the embedded outpost.
    #[serde(default)]
    pub managed: Option<String>,
    /// The outpost configuration, kept opaque (never sent back by this client).
    #[serde(default)]
    pub config: serde_json::Value,
}

impl Outpost {
    /// `managed` value of the embedded outpost.
    pub const EMBEDDED_MANAGED: &'static str = "goauthentik.io/outposts/embedded";
}

/// `GET /admin/version/`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Version {
    /// Running version, e.g. `2025.12.4`.
    pub version_current: String,
    /// Latest known release.
    #[serde(default)]
    pub version_latest: Option<String>,
    /// Whether `version_latest` is trustworthy (2024.2+).
    #[serde(default)]
    pub version_latest_valid: Option<bool>,
    /// Build commit.
    #[serde(default)]
    pub build_hash: Option<String>,
    /// Whether a newer release exists.
    #[serde(default)]
    pub outdated: Option<bool>,
    /// Whether an outpost runs an older version (2024.8+).
    #[serde(default)]
    pub outpost_outdated: Option<bool>,
}

/// `GET /core/users/me/`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SessionUser {
    /// The token's user.
    pub user: UserSelf,
    /// The real user while impersonating.
    #[serde(default)]
    pub original: Option<UserSelf>,
}

/// A user as seen by itself.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UserSelf {
    /// Numeric id.
    pub pk: i64,
    /// Username.
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the account is active.
    #[serde(default)]
    pub is_active: Option<bool>,
    /// Whether the user is a superuser (sees every object without RBAC grants).
    #[serde(default)]
    pub is_superuser: bool,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn next_page_treats_zero_and_garbage_as_the_end() {
        let page = |next: f64| Pagination {
            next,
            previous: 0.0,
            count: 0.0,
            current: 1.0,
            total_pages: 1.0,
        };
        assert_eq!(page(0.0).next_page(), None);
        assert_eq!(page(-3.0).next_page(), None);
        assert_eq!(page(f64::NAN).next_page(), None);
        assert_eq!(page(2.0).next_page(), Some(2));
    }

    #[test]
    fn provider_request_always_sends_flows_and_mode_but_not_unset_mappings() {
        let req =
            ProxyProviderRequest::new("p", "auth-uuid", "inval-uuid", "https://x.example.com");
        let body = serde_json::to_value(&req).expect("encodes");
        assert_eq!(body["invalidation_flow"], json!("inval-uuid"));
        assert_eq!(body["mode"], json!("proxy"));
        assert_eq!(body["authentication_flow"], json!(null));
        for absent in [
            "property_mappings",
            "access_token_validity",
            "refresh_token_validity",
        ] {
            assert!(body.get(absent).is_none(), "{absent} sent: {body}");
        }
        let with_mappings = ProxyProviderRequest {
            property_mappings: Some(vec!["m".to_owned()]),
            ..req
        };
        let body = serde_json::to_value(&with_mappings).expect("encodes");
        assert_eq!(body["property_mappings"], json!(["m"]));
    }

    #[test]
    fn patches_send_only_what_is_set_and_null_on_request() {
        let patch = ProxyProviderPatch {
            skip_path_regex: Some("^/api/".to_owned()),
            certificate: Some(None),
            ..ProxyProviderPatch::new(ProxyMode::ForwardSingle)
        };
        assert_eq!(
            serde_json::to_value(&patch).expect("encodes"),
            json!({"mode": "forward_single", "skip_path_regex": "^/api/", "certificate": null})
        );
        let unbind = ApplicationPatch {
            provider: Some(None),
            ..ApplicationPatch::default()
        };
        assert_eq!(
            serde_json::to_value(&unbind).expect("encodes"),
            json!({"provider": null})
        );
    }

    #[test]
    fn unknown_enum_values_decode_but_never_encode() {
        let mode: ProxyMode = serde_json::from_value(json!("forward_everything")).expect("decodes");
        assert_eq!(mode, ProxyMode::Unknown);
        assert!(serde_json::to_value(ProxyMode::Unknown).is_err());
        let engine: PolicyEngineMode = serde_json::from_value(json!("majority")).expect("decodes");
        assert_eq!(engine, PolicyEngineMode::Unknown);
    }
}
