//! The server's state and its rules: entities, the seed of a fresh authentik, validation on
//! write (one `write_*` function per resource, DRF order: field errors first, then object-level
//! checks) and rendering into response shapes copied from the recorded transcripts.

mod applications;
mod directory;
mod outposts;
mod providers;
mod sessions;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::ApiVersion;

pub use directory::{Binding, Flow, Group, User};
pub(crate) use directory::{group_autocomplete, render_flow};
pub(crate) use providers::BaseView;
pub use sessions::{Identity, Sessions, SignIn};
pub(crate) use sessions::{PendingCode, ProxySession};

/// `managed` value of the embedded outpost.
pub const EMBEDDED_OUTPOST_MANAGED: &str = "goauthentik.io/outposts/embedded";
/// Name of the embedded outpost.
pub const EMBEDDED_OUTPOST_NAME: &str = "authentik Embedded Outpost";

/// A `{matching_mode, url}` redirect URI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedirectUri {
    /// `strict` or `regex`.
    pub matching_mode: String,
    /// The URI.
    pub url: String,
}

/// Proxy-provider settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct ProxySettings {
    pub client_id: String,
    pub internal_host: String,
    pub external_host: String,
    pub internal_host_ssl_validation: bool,
    pub certificate: Option<Uuid>,
    pub skip_path_regex: String,
    pub basic_auth_enabled: bool,
    pub basic_auth_password_attribute: String,
    pub basic_auth_user_attribute: String,
    pub mode: String,
    pub intercept_header_auth: bool,
    pub redirect_uris: Vec<RedirectUri>,
    pub cookie_domain: String,
    pub jwt_federation_sources: Vec<Uuid>,
    pub jwt_federation_providers: Vec<i64>,
    pub access_token_validity: String,
    pub refresh_token_validity: String,
}

/// OAuth2-provider settings (only what the double needs to model "another provider type").
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct OAuth2Settings {
    pub client_type: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<Value>,
    pub access_token_validity: String,
    pub refresh_token_validity: String,
}

/// The concrete provider type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProviderKind {
    /// `authentik_providers_proxy.proxyprovider`
    Proxy(ProxySettings),
    /// `authentik_providers_oauth2.oauth2provider`
    OAuth2(OAuth2Settings),
}

/// A provider of any type; `name` is unique across all types.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct Provider {
    pub pk: i64,
    pub name: String,
    pub authentication_flow: Option<Uuid>,
    pub authorization_flow: Uuid,
    pub invalidation_flow: Uuid,
    pub property_mappings: Vec<Uuid>,
    pub kind: ProviderKind,
}

impl Provider {
    /// Proxy settings, if this is a proxy provider.
    pub fn proxy(&self) -> Option<&ProxySettings> {
        match &self.kind {
            ProviderKind::Proxy(p) => Some(p),
            ProviderKind::OAuth2(_) => None,
        }
    }

    /// Mutable proxy settings, for editing "by hand" in tests.
    pub fn proxy_mut(&mut self) -> Option<&mut ProxySettings> {
        match &mut self.kind {
            ProviderKind::Proxy(p) => Some(p),
            ProviderKind::OAuth2(_) => None,
        }
    }
}

/// An application (lookup by slug; `provider` is one-to-one).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct Application {
    pub pk: Uuid,
    pub name: String,
    pub slug: String,
    pub provider: Option<i64>,
    pub backchannel_providers: Vec<i64>,
    pub open_in_new_tab: bool,
    pub meta_launch_url: String,
    pub meta_icon: String,
    pub meta_description: String,
    pub meta_publisher: String,
    pub policy_engine_mode: String,
    pub group: String,
}

/// An outpost; `providers` is replaced wholesale on write.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct Outpost {
    pub pk: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub outpost_type: String,
    pub providers: Vec<i64>,
    pub service_connection: Option<Uuid>,
    pub config: Value,
    pub managed: Option<String>,
}

/// Deterministic id source (splitmix64), so a seed reproduces every uuid and client id.
#[derive(Debug, Clone)]
struct Ids(u64);

impl Ids {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| {
                let i = usize::try_from(self.next_u64() % ALPHABET.len() as u64).unwrap_or(0);
                char::from(ALPHABET[i])
            })
            .collect()
    }
}

/// A managed scope mapping that the server adds to every proxy provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeMapping {
    /// Mapping uuid.
    pub pk: Uuid,
    /// `managed` identifier.
    pub managed: String,
}

/// The whole server state. Tests may read and edit it through `DoubleHandle::with_state`.
#[derive(Debug, Clone)]
pub struct Model {
    /// Release imitated.
    pub version: ApiVersion,
    ids: Ids,
    next_provider_pk: i64,
    next_group_num_pk: i64,
    /// Seeded flows.
    pub flows: Vec<Flow>,
    /// Seeded managed scope mappings (also the only valid `property_mappings`).
    pub scope_mappings: Vec<ScopeMapping>,
    /// Seeded certificate keypairs (valid `certificate` values).
    pub certificates: Vec<Uuid>,
    /// Providers by pk.
    pub providers: BTreeMap<i64, Provider>,
    /// Applications.
    pub applications: Vec<Application>,
    /// Outposts.
    pub outposts: Vec<Outpost>,
    /// Groups.
    pub groups: Vec<Group>,
    /// Users (the admin is the token's user).
    pub users: Vec<User>,
    /// Policy bindings.
    pub bindings: Vec<Binding>,
    /// pk of the user the token belongs to.
    pub admin_pk: i64,
    /// `version_current` to report instead of the imitated release's (tests of how clients
    /// treat an unsupported or unparseable version).
    pub reported_version: Option<String>,
    /// Sign-in state of the embedded outpost and the authorize page.
    pub sessions: Sessions,
}

impl Model {
    /// A fresh authentik: default flows, managed scope mappings, the self-signed certificate,
    /// the embedded outpost, the admin user and the default groups.
    pub fn seeded(version: ApiVersion, seed: u64) -> Self {
        let mut ids = Ids(seed);
        let flows = directory::seed_flows(&mut ids);
        let scope_mappings = [
            "goauthentik.io/providers/oauth2/scope-openid",
            "goauthentik.io/providers/oauth2/scope-email",
            "goauthentik.io/providers/oauth2/scope-profile",
            "goauthentik.io/providers/oauth2/scope-entitlements",
            "goauthentik.io/providers/proxy/scope-proxy",
        ]
        .into_iter()
        .map(|managed| ScopeMapping {
            pk: ids.uuid(),
            managed: managed.to_owned(),
        })
        .collect();
        let certificates = vec![ids.uuid()];
        let embedded = Outpost {
            pk: ids.uuid(),
            name: EMBEDDED_OUTPOST_NAME.to_owned(),
            outpost_type: "proxy".to_owned(),
            providers: Vec::new(),
            service_connection: None,
            config: outposts::default_config(),
            managed: Some(EMBEDDED_OUTPOST_MANAGED.to_owned()),
        };
        let admin_pk = 3;
        let users = vec![User {
            pk: admin_pk,
            username: "akadmin".to_owned(),
            name: "authentik Default Admin".to_owned(),
            email: "admin@example.com".to_owned(),
            uid: format!("{:x}{:x}", ids.uuid().simple(), ids.uuid().simple()),
        }];
        let mut model = Model {
            version,
            ids,
            next_provider_pk: 1,
            next_group_num_pk: 1000,
            flows,
            scope_mappings,
            certificates,
            providers: BTreeMap::new(),
            applications: Vec::new(),
            outposts: vec![embedded],
            groups: Vec::new(),
            users,
            bindings: Vec::new(),
            admin_pk,
            reported_version: None,
            sessions: Sessions::default(),
        };
        directory::seed_groups(&mut model);
        model
    }

    fn alloc_provider_pk(&mut self) -> i64 {
        let pk = self.next_provider_pk;
        self.next_provider_pk += 1;
        pk
    }

    /// The embedded outpost's uuid, if it still exists.
    pub fn embedded_outpost(&self) -> Option<Uuid> {
        self.outposts
            .iter()
            .find(|o| o.managed.as_deref() == Some(EMBEDDED_OUTPOST_MANAGED))
            .map(|o| o.pk)
    }

    /// A flow's pk by slug.
    pub fn flow_pk(&self, slug: &str) -> Option<Uuid> {
        self.flows.iter().find(|f| f.slug == slug).map(|f| f.pk)
    }

    /// Everything, rendered as the API would answer (admin `GET /_double/state`).
    pub fn snapshot(&self) -> Value {
        let links = self.provider_links();
        json!({
            "version": self.version.version_string(),
            "providers": self.providers.values().map(|p| self.render_provider(p, &links)).collect::<Vec<_>>(),
            "applications": self.applications.iter().map(|a| self.render_application(a, &links)).collect::<Vec<_>>(),
            "outposts": self.outposts.iter().map(|o| self.render_outpost(o, &links)).collect::<Vec<_>>(),
            "flows": self.flows.iter().map(directory::render_flow).collect::<Vec<_>>(),
            "groups": self.groups.iter().map(|g| self.render_group(g)).collect::<Vec<_>>(),
            "bindings": self.bindings.iter().map(|b| self.render_binding(b)).collect::<Vec<_>>(),
        })
    }
}

impl Model {
    /// `body` without the fields this release's request `model` (its `Patched` twin on PATCH)
    /// did not have: DRF ignores unknown input rather than rejecting it.
    fn known_fields(&self, model: &str, partial: bool, body: &Value) -> Value {
        let model = if partial {
            format!("Patched{model}")
        } else {
            model.to_owned()
        };
        self.version.known_fields(&model, body)
    }
}

/// Overwrite `slot` when the request carried a value.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}
