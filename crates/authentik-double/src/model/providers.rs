//! Providers: proxy (full model), OAuth2 (enough to hold a name), and the base `Provider` view.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{
    Application, Model, OAuth2Settings, Provider, ProviderKind, ProxySettings, RedirectUri, set,
};
use crate::error::ApiError;
use crate::form::{Form, Need, is_timedelta_string};

const PROXY_MODES: &[&str] = &["proxy", "forward_single", "forward_domain"];

/// How a provider is shown inside another object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BaseView {
    /// With its own type's component and verbose names (applications, `/providers/all/`).
    Typed,
    /// As the generic `authentik_core.provider` (outposts' `providers_obj`, as recorded).
    Generic,
}

/// Fields common to every provider type, as submitted.
#[derive(Debug, Default)]
struct BaseInput {
    name: Option<String>,
    authentication_flow: Option<Option<Uuid>>,
    authorization_flow: Option<Uuid>,
    invalidation_flow: Option<Uuid>,
    property_mappings: Option<Vec<Uuid>>,
}

impl Model {
    fn read_base(&self, f: &mut Form<'_>, pk: Option<i64>) -> BaseInput {
        let name = f.string("name", Need::Required, false);
        // `Provider.name` is unique on the base table: across every provider type.
        if let Some(n) = &name
            && self
                .providers
                .values()
                .any(|p| p.name == *n && Some(p.pk) != pk)
        {
            f.error("name", "provider with this name already exists.");
        }
        let flow_exists = |u: Uuid| self.flows.iter().any(|fl| fl.pk == u);
        BaseInput {
            name,
            authentication_flow: f.reference::<Uuid>(
                "authentication_flow",
                Need::Optional,
                true,
                flow_exists,
            ),
            authorization_flow: f
                .reference::<Uuid>("authorization_flow", Need::Required, false, flow_exists)
                .flatten(),
            invalidation_flow: f
                .reference::<Uuid>("invalidation_flow", Need::Required, false, flow_exists)
                .flatten(),
            property_mappings: f.references::<Uuid>("property_mappings", Need::Optional, |u| {
                self.scope_mappings.iter().any(|m| m.pk == u)
            }),
        }
    }

    fn validity(f: &mut Form<'_>, field: &str) -> Option<String> {
        let v = f.string(field, Need::Optional, false)?;
        if is_timedelta_string(&v) {
            Some(v)
        } else {
            f.error(
                field,
                format!("{v} is not in the correct format of 'hours=3;minutes=1'."),
            );
            None
        }
    }

    /// Create (`pk == None`), update (PUT) or partially update (PATCH) a proxy provider.
    pub(crate) fn write_proxy_provider(
        &mut self,
        pk: Option<i64>,
        body: &Value,
        partial: bool,
    ) -> Result<i64, ApiError> {
        let existing = match pk {
            Some(pk) => Some(
                self.providers
                    .get(&pk)
                    .filter(|p| p.proxy().is_some())
                    .cloned()
                    .ok_or(ApiError::NotFound("ProxyProvider"))?,
            ),
            None => None,
        };
        let body = self.known_fields("ProxyProviderRequest", partial, body);
        let mut f = Form::new(&body, partial)?;
        let base = self.read_base(&mut f, pk);
        let external_host = f.url("external_host", Need::Required, false);
        let internal_host = f.url("internal_host", Need::Optional, true);
        let internal_host_ssl_validation = f.bool("internal_host_ssl_validation");
        let certificate = f.reference::<Uuid>("certificate", Need::Optional, true, |u| {
            self.certificates.contains(&u)
        });
        let skip_path_regex = f.string("skip_path_regex", Need::Optional, true);
        let basic_auth_enabled = f.bool("basic_auth_enabled");
        let basic_auth_user_attribute = f.string("basic_auth_user_attribute", Need::Optional, true);
        let basic_auth_password_attribute =
            f.string("basic_auth_password_attribute", Need::Optional, true);
        let mode = f.choice("mode", Need::Optional, PROXY_MODES);
        let intercept_header_auth = f.bool("intercept_header_auth");
        let cookie_domain = f.string("cookie_domain", Need::Optional, true);
        // No JWT federation sources exist in a fresh authentik: any uuid is unknown.
        let jwt_federation_sources =
            f.references::<Uuid>("jwt_federation_sources", Need::Optional, |_| false);
        let jwt_federation_providers =
            f.references::<i64>("jwt_federation_providers", Need::Optional, |p| {
                self.providers
                    .get(&p)
                    .is_some_and(|p| matches!(p.kind, ProviderKind::OAuth2(_)))
            });
        let access_token_validity = Self::validity(&mut f, "access_token_validity");
        let refresh_token_validity = Self::validity(&mut f, "refresh_token_validity");
        f.finish()?;

        // Object-level rules read only the submitted payload, so a PATCH without `mode`
        // counts as mode=proxy and needs `internal_host` in the same request (API doc §3.1).
        if mode.as_deref().unwrap_or("proxy") == "proxy"
            && internal_host.as_deref().unwrap_or("").is_empty()
        {
            return Err(ApiError::field(
                "internal_host",
                "Internal host cannot be empty when forward auth is disabled.",
            ));
        }
        if basic_auth_enabled == Some(true)
            && (basic_auth_user_attribute
                .as_deref()
                .unwrap_or("")
                .is_empty()
                || basic_auth_password_attribute
                    .as_deref()
                    .unwrap_or("")
                    .is_empty())
        {
            return Err(ApiError::field(
                "basic_auth_enabled",
                "User and password attributes must be set when basic auth is enabled.",
            ));
        }

        let mut provider = match existing {
            Some(p) => p,
            None => {
                let pk = self.alloc_provider_pk();
                let client_id = self.ids.token(40);
                new_provider(pk, ProviderKind::Proxy(default_proxy_settings(client_id)))
            }
        };
        apply_base(&mut provider, base);
        if let Some(s) = provider.proxy_mut() {
            set(&mut s.external_host, external_host);
            set(&mut s.internal_host, internal_host);
            set(
                &mut s.internal_host_ssl_validation,
                internal_host_ssl_validation,
            );
            set(&mut s.certificate, certificate);
            set(&mut s.skip_path_regex, skip_path_regex);
            set(&mut s.basic_auth_enabled, basic_auth_enabled);
            set(&mut s.basic_auth_user_attribute, basic_auth_user_attribute);
            set(
                &mut s.basic_auth_password_attribute,
                basic_auth_password_attribute,
            );
            set(&mut s.mode, mode);
            set(&mut s.intercept_header_auth, intercept_header_auth);
            set(&mut s.cookie_domain, cookie_domain);
            set(&mut s.jwt_federation_sources, jwt_federation_sources);
            set(&mut s.jwt_federation_providers, jwt_federation_providers);
            set(&mut s.access_token_validity, access_token_validity);
            set(&mut s.refresh_token_validity, refresh_token_validity);
        }
        self.set_oauth_defaults(&mut provider);
        let pk = provider.pk;
        self.providers.insert(pk, provider);
        Ok(pk)
    }

    /// authentik's `ProxyProvider.set_oauth_defaults()`, run on every create and update: adds
    /// the managed scope mappings and derives `redirect_uris` from `external_host`.
    fn set_oauth_defaults(&self, provider: &mut Provider) {
        for m in &self.scope_mappings {
            if !provider.property_mappings.contains(&m.pk) {
                provider.property_mappings.push(m.pk);
            }
        }
        if let Some(s) = provider.proxy_mut() {
            let host = s.external_host.trim_end_matches('/').to_owned();
            s.redirect_uris = vec![
                RedirectUri {
                    matching_mode: "strict".to_owned(),
                    url: format!(
                        "{host}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true"
                    ),
                },
                RedirectUri {
                    matching_mode: "strict".to_owned(),
                    url: format!("{host}?X-authentik-auth-callback=true"),
                },
            ];
        }
    }

    /// Create an OAuth2 provider (POST `/providers/oauth2/`).
    pub(crate) fn write_oauth2_provider(&mut self, body: &Value) -> Result<i64, ApiError> {
        let mut f = Form::new(body, false)?;
        let base = self.read_base(&mut f, None);
        let client_type = f.choice("client_type", Need::Optional, &["confidential", "public"]);
        let redirect_uris = match body.get("redirect_uris") {
            None => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(_) => {
                f.error(
                    "redirect_uris",
                    "Expected a list of items but got type \"str\".",
                );
                None
            }
        };
        let access_token_validity = Self::validity(&mut f, "access_token_validity");
        let refresh_token_validity = Self::validity(&mut f, "refresh_token_validity");
        f.finish()?;
        let pk = self.alloc_provider_pk();
        let settings = OAuth2Settings {
            client_type: client_type.unwrap_or_else(|| "confidential".to_owned()),
            client_id: self.ids.token(40),
            client_secret: self.ids.token(128),
            redirect_uris: redirect_uris.unwrap_or_default(),
            access_token_validity: access_token_validity.unwrap_or_else(|| "hours=1".to_owned()),
            refresh_token_validity: refresh_token_validity.unwrap_or_else(|| "days=30".to_owned()),
        };
        let mut provider = new_provider(pk, ProviderKind::OAuth2(settings));
        apply_base(&mut provider, base);
        self.providers.insert(pk, provider);
        Ok(pk)
    }

    /// Create an OAuth2 provider directly (test setup: "a name taken by another type").
    pub fn create_foreign_provider(&mut self, name: &str) -> i64 {
        let flow = self.flows.first().map(|f| f.pk).unwrap_or_default();
        let body = json!({
            "name": name,
            "authorization_flow": self.flow_pk("default-provider-authorization-explicit-consent").unwrap_or(flow),
            "invalidation_flow": self.flow_pk("default-provider-invalidation-flow").unwrap_or(flow),
        });
        match self.write_oauth2_provider(&body) {
            Ok(pk) => pk,
            // Name already taken: hand back the holder, which is what the caller wanted to exist.
            Err(_) => self
                .providers
                .values()
                .find(|p| p.name == name)
                .map_or(0, |p| p.pk),
        }
    }

    /// Delete a provider: its application keeps existing with `provider = null`
    /// (`on_delete=SET_DEFAULT`) and outposts drop it from their lists.
    pub(crate) fn delete_provider(&mut self, pk: i64) {
        self.providers.remove(&pk);
        for app in &mut self.applications {
            if app.provider == Some(pk) {
                app.provider = None;
            }
            app.backchannel_providers.retain(|p| *p != pk);
        }
        for outpost in &mut self.outposts {
            outpost.providers.retain(|p| *p != pk);
        }
    }

    /// `GET /providers/proxy/{id}/used_by/`.
    pub(crate) fn provider_used_by(&self, pk: i64) -> Value {
        let apps = self
            .applications
            .iter()
            .filter(|a| a.provider == Some(pk))
            .map(|a| {
                json!({"app": "authentik_core", "model_name": "application", "pk": a.pk.to_string(),
                       "name": a.name, "action": "set_default"})
            });
        let outposts = self
            .outposts
            .iter()
            .filter(|o| o.providers.contains(&pk))
            .map(|o| {
                json!({"app": "authentik_outposts", "model_name": "outpost", "pk": o.pk.to_string(),
                   "name": format!("Outpost {}", o.name), "action": "cascade_many"})
            });
        Value::Array(apps.chain(outposts).collect())
    }

    /// Which application holds each provider. Built once per response: rendering a provider
    /// needs it, and a list of N providers must not search the applications N times.
    pub(crate) fn provider_links(&self) -> ProviderLinks<'_> {
        let mut links = ProviderLinks::default();
        for a in &self.applications {
            if let Some(pk) = a.provider {
                links.main.entry(pk).or_insert(a);
            }
            for pk in &a.backchannel_providers {
                links.backchannel.entry(*pk).or_insert(a);
            }
        }
        links
    }

    /// The base `Provider` shape.
    pub(crate) fn render_provider_base(
        &self,
        p: &Provider,
        view: BaseView,
        links: &ProviderLinks<'_>,
    ) -> Map<String, Value> {
        let app = links.main.get(&p.pk);
        let backchannel = links.backchannel.get(&p.pk);
        let (component, verbose, plural, meta) = match (view, &p.kind) {
            (BaseView::Generic, _) => ("", "provider", "providers", "authentik_core.provider"),
            (BaseView::Typed, ProviderKind::Proxy(_)) => (
                "ak-provider-proxy-form",
                "Proxy Provider",
                "Proxy Providers",
                "authentik_providers_proxy.proxyprovider",
            ),
            (BaseView::Typed, ProviderKind::OAuth2(_)) => (
                "ak-provider-oauth2-form",
                "OAuth2/OpenID Provider",
                "OAuth2/OpenID Providers",
                "authentik_providers_oauth2.oauth2provider",
            ),
        };
        let v = json!({
            "pk": p.pk,
            "name": p.name,
            "authentication_flow": p.authentication_flow,
            "authorization_flow": p.authorization_flow,
            "invalidation_flow": p.invalidation_flow,
            "property_mappings": p.property_mappings,
            "component": component,
            "assigned_application_slug": app.map(|a| &a.slug),
            "assigned_application_name": app.map(|a| &a.name),
            "assigned_backchannel_application_slug": backchannel.map(|a| &a.slug),
            "assigned_backchannel_application_name": backchannel.map(|a| &a.name),
            "verbose_name": verbose,
            "verbose_name_plural": plural,
            "meta_model_name": meta,
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// The full shape of the provider's own type (`ProxyProvider` / `OAuth2Provider`).
    pub(crate) fn render_provider(&self, p: &Provider, links: &ProviderLinks<'_>) -> Value {
        let mut m = self.render_provider_base(p, BaseView::Typed, links);
        let extra = match &p.kind {
            ProviderKind::Proxy(s) => json!({
                "client_id": s.client_id,
                "internal_host": s.internal_host,
                "external_host": s.external_host,
                "internal_host_ssl_validation": s.internal_host_ssl_validation,
                "certificate": s.certificate,
                "skip_path_regex": s.skip_path_regex,
                "basic_auth_enabled": s.basic_auth_enabled,
                "basic_auth_password_attribute": s.basic_auth_password_attribute,
                "basic_auth_user_attribute": s.basic_auth_user_attribute,
                "mode": s.mode,
                "intercept_header_auth": s.intercept_header_auth,
                "redirect_uris": s.redirect_uris,
                "cookie_domain": s.cookie_domain,
                "jwt_federation_sources": s.jwt_federation_sources,
                "jwt_federation_providers": s.jwt_federation_providers,
                "access_token_validity": s.access_token_validity,
                "refresh_token_validity": s.refresh_token_validity,
                // `str(outpost)` is "Outpost <name>", as recorded.
                "outpost_set": self.outposts.iter().filter(|o| o.providers.contains(&p.pk))
                    .map(|o| format!("Outpost {}", o.name)).collect::<Vec<_>>(),
            }),
            ProviderKind::OAuth2(s) => json!({
                "client_type": s.client_type,
                "client_id": s.client_id,
                "client_secret": s.client_secret,
                "access_code_validity": "minutes=1",
                "access_token_validity": s.access_token_validity,
                "refresh_token_validity": s.refresh_token_validity,
                "refresh_token_threshold": "seconds=0",
                "include_claims_in_id_token": true,
                "signing_key": null,
                "encryption_key": null,
                "redirect_uris": s.redirect_uris,
                "logout_uri": "",
                "logout_method": "backchannel",
                "sub_mode": "hashed_user_id",
                "issuer_mode": "per_provider",
                "jwt_federation_sources": [],
                "jwt_federation_providers": [],
            }),
        };
        if let Value::Object(extra) = extra {
            m.extend(extra);
        }
        Value::Object(m)
    }

    /// A list item with hidden keys for filters the response does not carry.
    pub(crate) fn provider_list_item(
        &self,
        p: &Provider,
        full: bool,
        links: &ProviderLinks<'_>,
    ) -> Value {
        let mut v = if full {
            self.render_provider(p, links)
        } else {
            Value::Object(self.render_provider_base(p, BaseView::Typed, links))
        };
        let flow_slug = |u: Uuid| {
            self.flows
                .iter()
                .find(|f| f.pk == u)
                .map(|f| f.slug.clone())
        };
        if let Value::Object(m) = &mut v {
            m.insert(
                "_application".into(),
                json!(m.get("assigned_application_slug").cloned()),
            );
            m.insert(
                "_authorization_flow_slug".into(),
                json!(flow_slug(p.authorization_flow)),
            );
            m.insert(
                "_certificate_name".into(),
                json!(
                    p.proxy()
                        .and_then(|s| s.certificate)
                        .map(|_| "authentik Self-signed Certificate")
                ),
            );
        }
        v
    }
}

fn new_provider(pk: i64, kind: ProviderKind) -> Provider {
    Provider {
        pk,
        name: String::new(),
        authentication_flow: None,
        authorization_flow: Uuid::nil(),
        invalidation_flow: Uuid::nil(),
        property_mappings: Vec::new(),
        kind,
    }
}

fn apply_base(p: &mut Provider, b: BaseInput) {
    set(&mut p.name, b.name);
    set(&mut p.authentication_flow, b.authentication_flow);
    set(&mut p.authorization_flow, b.authorization_flow);
    set(&mut p.invalidation_flow, b.invalidation_flow);
    set(&mut p.property_mappings, b.property_mappings);
}

/// Model defaults of `ProxyProvider` (API doc §3.1).
fn default_proxy_settings(client_id: String) -> ProxySettings {
    ProxySettings {
        client_id,
        internal_host: String::new(),
        external_host: String::new(),
        internal_host_ssl_validation: true,
        certificate: None,
        skip_path_regex: String::new(),
        basic_auth_enabled: false,
        basic_auth_password_attribute: String::new(),
        basic_auth_user_attribute: String::new(),
        mode: "proxy".to_owned(),
        intercept_header_auth: true,
        redirect_uris: Vec::new(),
        cookie_domain: String::new(),
        jwt_federation_sources: Vec::new(),
        jwt_federation_providers: Vec::new(),
        access_token_validity: "hours=1".to_owned(),
        refresh_token_validity: "days=30".to_owned(),
    }
}

/// The applications that hold each provider, by provider pk (see [`Model::provider_links`]).
#[derive(Default)]
pub(crate) struct ProviderLinks<'a> {
    main: HashMap<i64, &'a Application>,
    backchannel: HashMap<i64, &'a Application>,
}
