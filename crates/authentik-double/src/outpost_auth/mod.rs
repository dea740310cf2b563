//! The embedded outpost's forward auth and the part of core's sign-in it talks to, as
//! recorded from authentik 2025.12.4 (`authentik-forward-auth.md`).
//!
//! Served on the double's address beside the API:
//! - `/outpost.goauthentik.io/auth/{traefik,caddy,nginx}` and `/auth/envoy/<path>`: forward
//!   auth for the proxy provider (of the embedded outpost, bound to an application) whose
//!   external host is the request's X-Forwarded-Host (or Host); an unknown host gets core's 404.
//! - `/outpost.goauthentik.io/callback`, `/start?rd=…`, `/ping`.
//! - `/application/o/authorize/`: with an `authentik_session` cookie, a code for a user the
//!   application's policy bindings allow, "Permission denied" for one they do not; without one,
//!   the login flow (not modelled beyond the redirect).
//! - `POST /_double/sign-in`: the test shortcut for logging in to authentik (body
//!   [`SignIn`](crate::model::SignIn)); answers the `authentik_session` cookie.
//!
//! [`decide`] holds the decisions, [`respond`] the response shapes; the handlers here only
//! read the model, apply the decision's effects (sessions, codes) and pick the response.

mod decide;
mod respond;
mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::form::timedelta_seconds;
use crate::model::{Identity, Model, PendingCode, ProxySession, SignIn};
use crate::state::Shared;
use decide::{Decision, Endpoint, Session};
use respond::CookiePolicy;

pub use token::claims_unverified;

/// Name of core's session cookie.
pub const CORE_SESSION_COOKIE: &str = "authentik_session";

#[derive(Debug)]
struct Ctx {
    shared: Arc<Shared>,
    /// Browser-facing authentik URL when the embedded outpost's `authentik_host` is blank: the
    /// address the outpost reached core at, i.e. the double's own.
    own_url: String,
}

type St = State<Arc<Ctx>>;

/// Routes of the outpost, the authorize page and the sign-in shortcut.
pub(crate) fn router(shared: Arc<Shared>, addr: SocketAddr) -> Router {
    let ctx = Arc::new(Ctx {
        shared,
        own_url: format!("http://{addr}"),
    });
    Router::new()
        .route("/outpost.goauthentik.io/auth/traefik", any(traefik))
        .route("/outpost.goauthentik.io/auth/caddy", any(caddy))
        .route("/outpost.goauthentik.io/auth/nginx", any(nginx))
        .route(decide::ENVOY_PREFIX, any(envoy))
        .route("/outpost.goauthentik.io/auth/envoy/", any(envoy))
        .route("/outpost.goauthentik.io/auth/envoy/{*rest}", any(envoy))
        .route(decide::CALLBACK_PATH, get(callback))
        .route("/outpost.goauthentik.io/start", get(start))
        .route("/outpost.goauthentik.io/ping", any(ping))
        .route("/application/o/authorize/", get(authorize))
        .route("/_double/sign-in", post(sign_in))
        .with_state(ctx)
}

/// What the outpost knows about the provider serving a host.
#[derive(Debug, Clone)]
struct OutpostApp {
    provider_pk: i64,
    provider_name: String,
    client_id: String,
    external_host: String,
    mode: String,
    skip_path_regex: String,
    cookie: CookiePolicy,
    app_slug: String,
    outpost_name: String,
}

impl OutpostApp {
    fn scheme(&self) -> &str {
        self.external_host
            .split_once("://")
            .map_or("https", |(s, _)| s)
    }

    /// `iss` of the state tokens the outpost signs for this provider.
    fn state_issuer(&self) -> String {
        format!("goauthentik.io/outpost/{}", self.client_id)
    }
}

/// One forward-auth request as the outpost sees it.
#[derive(Debug, Clone, Copy)]
struct Asking<'a> {
    app: &'a OutpostApp,
    endpoint: Endpoint,
    /// This provider's cookie value, if sent.
    cookie: Option<&'a str>,
    session: Session<'a>,
}

/// The provider's session the cookie names: `None` without a cookie, `Some(None)` for a value
/// the outpost does not know. Cloned out, since answering may change the model.
fn stored_session(
    m: &Model,
    app: &OutpostApp,
    cookie: Option<&str>,
) -> Option<Option<ProxySession>> {
    cookie.map(|v| {
        m.sessions
            .proxy(v)
            .filter(|s| s.provider == app.provider_pk)
            .cloned()
    })
}

fn session_of(stored: Option<&Option<ProxySession>>) -> Session<'_> {
    match stored {
        None => Session::Absent,
        Some(None) => Session::Unknown,
        Some(Some(s)) => s
            .identity
            .as_ref()
            .map_or(Session::Anonymous, Session::Signed),
    }
}

/// `host[:port]` of a URL, lower-cased.
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The embedded outpost's proxy provider (with an application) serving `host`: its external
/// host, or for forward_domain its cookie domain.
fn app_for_host(m: &Model, host: &str) -> Option<OutpostApp> {
    let host = host.to_ascii_lowercase();
    let outpost = m
        .outposts
        .iter()
        .find(|o| Some(o.pk) == m.embedded_outpost())?;
    let candidates = outpost.providers.iter().filter_map(|pk| {
        let provider = m.providers.get(pk)?;
        // Proxy mode (the outpost as the reverse proxy itself) is not modelled.
        let settings = provider.proxy().filter(|s| s.mode != "proxy")?;
        let app = m.applications.iter().find(|a| a.provider == Some(*pk))?;
        Some((provider, settings, app))
    });
    let in_domain = |domain: &str| {
        let domain = domain.trim_start_matches('.').to_ascii_lowercase();
        let bare = host.split(':').next().unwrap_or_default();
        !domain.is_empty() && (bare == domain || bare.ends_with(&format!(".{domain}")))
    };
    let (provider, settings, app) = candidates
        .clone()
        .find(|(_, s, _)| authority(&s.external_host) == host)
        .or_else(|| {
            candidates
                .clone()
                .find(|(_, s, _)| s.mode == "forward_domain" && in_domain(&s.cookie_domain))
        })?;
    let validity = timedelta_seconds(&settings.access_token_validity).unwrap_or(3600.0);
    Some(OutpostApp {
        provider_pk: provider.pk,
        provider_name: provider.name.clone(),
        client_id: settings.client_id.clone(),
        external_host: settings.external_host.clone(),
        mode: settings.mode.clone(),
        skip_path_regex: settings.skip_path_regex.clone(),
        cookie: CookiePolicy {
            name: respond::cookie_name(&settings.client_id),
            secure: settings.external_host.starts_with("https://"),
            domain: settings.cookie_domain.clone(),
            // Whole seconds plus one, so a session never outlives its token by rounding.
            max_age: validity as u64 + 1,
        },
        app_slug: app.slug.clone(),
        outpost_name: outpost.name.clone(),
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Ctx {
    /// The browser-facing authentik URL: the outpost's `authentik_host_browser`, its
    /// `authentik_host`, else the double's own address.
    fn authentik_url(&self, m: &Model) -> String {
        let config = m
            .outposts
            .iter()
            .find(|o| Some(o.pk) == m.embedded_outpost())
            .map(|o| &o.config);
        ["authentik_host_browser", "authentik_host"]
            .iter()
            .filter_map(|k| config.and_then(|c| c.get(*k)).and_then(Value::as_str))
            .find(|v| !v.is_empty())
            .map_or_else(
                || self.own_url.clone(),
                |v| v.trim_end_matches('/').to_owned(),
            )
    }

    /// Redirect to authorize (nginx: 401). A request without this provider's cookie gets a new
    /// session and its cookie; a known anonymous session is reused without a new cookie; an
    /// unknown value gets neither (the state's `sid` is then empty), as recorded.
    fn sign_in(&self, m: &mut Model, asking: &Asking<'_>, redirect: &str) -> Response {
        let app = asking.app;
        let (sid, set_cookie) = match asking.session {
            Session::Absent => {
                let value = m.sessions.new_proxy(app.provider_pk);
                let set = app
                    .cookie
                    .set_cookie(&value, app.cookie.max_age, SystemTime::now());
                (value, Some(set))
            }
            Session::Anonymous | Session::Signed(_) => {
                (asking.cookie.unwrap_or_default().to_owned(), None)
            }
            Session::Unknown => (String::new(), None),
        };
        if asking.endpoint == Endpoint::Nginx {
            return respond::unauthorized(set_cookie);
        }
        // 32 random bytes, base64url, like the outpost's.
        let random: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
            .iter()
            .flat_map(|u| u.into_bytes())
            .collect();
        let nonce = URL_SAFE_NO_PAD.encode(random);
        let state = token::sign(
            m.sessions.key(),
            &json!({
                "iss": app.state_issuer(),
                "sid": sid,
                "state": nonce,
                "redirect": redirect,
            }),
        );
        let location = respond::authorize_url(
            &self.authentik_url(m),
            &app.client_id,
            &app.external_host,
            &state,
        );
        respond::found(&location, set_cookie)
    }

    /// Redeem the code for the session in the cookie; on success 302 back to the state's URL
    /// with the cookie refreshed. Anything that does not add up starts a new sign-in.
    fn callback(
        &self,
        m: &mut Model,
        asking: &Asking<'_>,
        (code, state): (&str, &str),
        fallback_redirect: &str,
    ) -> Response {
        let (app, cookie) = (asking.app, asking.cookie);
        let claims = token::verify(m.sessions.key(), state).filter(|c| {
            c["iss"] == app.state_issuer() && Some(c["sid"].as_str().unwrap_or_default()) == cookie
        });
        let redeemed = claims.as_ref().and_then(|_| m.sessions.redeem(code));
        let (Some(claims), Some(pending), Some(value), Session::Anonymous | Session::Signed(_)) =
            (claims, redeemed, cookie, asking.session)
        else {
            return self.sign_in(m, asking, fallback_redirect);
        };
        if pending.client_id != app.client_id {
            return self.sign_in(m, asking, fallback_redirect);
        }
        let identity = self.identity(m, app, pending.user);
        m.sessions.set_identity(value, identity);
        let redirect = claims["redirect"].as_str().unwrap_or(fallback_redirect);
        // The session now lives as long as the token, which was issued a moment ago.
        let max_age = app.cookie.max_age.saturating_sub(2);
        let set = app.cookie.set_cookie(value, max_age, SystemTime::now());
        respond::found(redirect, Some(set))
    }

    /// The claims the outpost keeps after the callback, with the id_token it passes on.
    fn identity(&self, m: &Model, app: &OutpostApp, user_pk: i64) -> Identity {
        let user = m.users.iter().find(|u| u.pk == user_pk);
        let field =
            |f: fn(&crate::model::User) -> &String| user.map(f).cloned().unwrap_or_default();
        let (username, email, name, uid) = (
            field(|u| &u.username),
            field(|u| &u.email),
            field(|u| &u.name),
            field(|u| &u.uid),
        );
        let groups = m.group_names(user_pk);
        let now = now_secs();
        let id_token = token::sign(
            m.sessions.key(),
            &json!({
                "iss": format!("{}/application/o/{}/", self.authentik_url(m), app.app_slug),
                "sub": uid,
                "aud": app.client_id,
                "exp": now + app.cookie.max_age - 1,
                "iat": now,
                "auth_time": now,
                "acr": "goauthentik.io/providers/oauth2/default",
                "amr": ["pwd"],
                "sid": uuid::Uuid::new_v4().simple().to_string(),
                "ak_proxy": {"user_attributes": {}, "is_superuser": m.is_superuser(user_pk)},
                "email": email,
                "email_verified": false,
                "entitlements": [],
                "roles": [],
                "name": name,
                "given_name": name,
                "preferred_username": username,
                "nickname": username,
                "groups": groups,
                "azp": app.client_id,
                "uid": uuid::Uuid::new_v4().simple().to_string(),
                "scope": "email entitlements openid profile ak_proxy",
            }),
        );
        Identity {
            user: user_pk,
            username,
            email,
            name,
            uid,
            groups,
            id_token,
        }
    }

    /// One forward-auth request.
    fn forward(&self, endpoint: Endpoint, headers: &HeaderMap, envoy_path: &str) -> Response {
        let mut m = self.shared.model();
        let Some(app) = decide::request_host(headers).and_then(|h| app_for_host(&m, h)) else {
            return respond::core_not_found();
        };
        let original = decide::original(endpoint, headers, envoy_path, app.scheme());
        let fallback = original.as_ref().map(|o| o.url.clone()).unwrap_or_default();
        let cookie = respond::request_cookie(headers, &app.cookie.name);
        let stored = stored_session(&m, &app, cookie);
        let asking = Asking {
            app: &app,
            endpoint,
            cookie,
            session: session_of(stored.as_ref()),
        };
        match decide::decide(original, asking.session, &app.skip_path_regex, &app.mode) {
            Decision::Misconfigured => respond::configuration_error(),
            Decision::Identity(who) => {
                let meta = respond::Meta {
                    jwks: format!(
                        "{}/application/o/{}/jwks/",
                        self.authentik_url(&m),
                        app.app_slug
                    ),
                    outpost: &app.outpost_name,
                    provider: &app.provider_name,
                    app: &app.app_slug,
                    version: m.version.version_string(),
                };
                respond::identity(
                    who,
                    &meta,
                    headers.get(header::USER_AGENT),
                    asking.endpoint != Endpoint::Nginx,
                )
            }
            Decision::Skip => respond::skipped(),
            Decision::Callback { code, state } => {
                self.callback(&mut m, &asking, (&code, &state), &fallback)
            }
            Decision::SignIn { redirect } => self.sign_in(&mut m, &asking, &redirect),
        }
    }
}

async fn traefik(State(ctx): St, headers: HeaderMap) -> Response {
    ctx.forward(Endpoint::Traefik, &headers, "")
}

async fn caddy(State(ctx): St, headers: HeaderMap) -> Response {
    ctx.forward(Endpoint::Caddy, &headers, "")
}

async fn nginx(State(ctx): St, headers: HeaderMap) -> Response {
    ctx.forward(Endpoint::Nginx, &headers, "")
}

async fn envoy(State(ctx): St, uri: Uri, headers: HeaderMap) -> Response {
    let rest = uri
        .path_and_query()
        .map_or("", |p| p.as_str())
        .strip_prefix(decide::ENVOY_PREFIX)
        .unwrap_or_default();
    ctx.forward(Endpoint::Envoy, &headers, rest)
}

/// The callback reached directly on the application's host (nginx, Envoy and Caddy setups
/// route `/outpost.goauthentik.io/` to the outpost): Traefik's code path with the URL as is.
async fn callback(State(ctx): St, uri: Uri, headers: HeaderMap) -> Response {
    let mut forwarded = headers.clone();
    let path_and_query = uri.path_and_query().map_or("", |p| p.as_str()).to_owned();
    if let Ok(v) = path_and_query.parse() {
        forwarded.insert("x-forwarded-uri", v);
    }
    if !forwarded.contains_key("x-forwarded-proto") {
        forwarded.insert(
            "x-forwarded-proto",
            axum::http::HeaderValue::from_static("https"),
        );
    }
    ctx.forward(Endpoint::Traefik, &forwarded, "")
}

/// `/start?rd=<url>`: the redirect nginx's error page sends the browser to.
async fn start(State(ctx): St, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let mut m = ctx.shared.model();
    let Some(app) = decide::request_host(&headers).and_then(|h| app_for_host(&m, h)) else {
        return respond::core_not_found();
    };
    let rd = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "rd")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| app.external_host.clone());
    let cookie = respond::request_cookie(&headers, &app.cookie.name);
    let stored = stored_session(&m, &app, cookie);
    let asking = Asking {
        app: &app,
        endpoint: Endpoint::Traefik,
        cookie,
        session: session_of(stored.as_ref()),
    };
    ctx.sign_in(&mut m, &asking, &rd)
}

async fn ping() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Core's authorize endpoint, as far as forward auth needs it.
async fn authorize(
    State(ctx): St,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut m = ctx.shared.model();
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let client_id = param("client_id").unwrap_or_default();
    let Some((provider, app)) = m.providers.values().find_map(|p| {
        let settings = p.proxy().filter(|s| s.client_id == client_id)?;
        let app = m.applications.iter().find(|a| a.provider == Some(p.pk))?;
        Some((settings.clone(), app.clone()))
    }) else {
        return respond::core_not_found();
    };
    let Some(user) = respond::request_cookie(&headers, CORE_SESSION_COOKIE)
        .and_then(|v| m.sessions.core_user(v))
    else {
        let next: String = url::form_urlencoded::byte_serialize(
            uri.path_and_query().map_or("", |p| p.as_str()).as_bytes(),
        )
        .collect();
        return respond::core_found(
            &format!("/flows/-/default/authentication/?next={next}"),
            None,
        );
    };
    let redirect_uri = param("redirect_uri").unwrap_or_default();
    if !provider.redirect_uris.iter().any(|r| r.url == redirect_uri) {
        return respond::redirect_uri_error();
    }
    if !m.user_may_access(user, &app) {
        return respond::permission_denied();
    }
    let code = m.sessions.new_code(PendingCode {
        user,
        client_id: client_id.to_owned(),
    });
    let state: String =
        url::form_urlencoded::byte_serialize(param("state").unwrap_or_default().as_bytes())
            .collect();
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    respond::core_found(
        &format!("{redirect_uri}{separator}code={code}&state={state}"),
        respond::request_cookie(&headers, CORE_SESSION_COOKIE)
            .map(|v| format!("{CORE_SESSION_COOKIE}={v}; HttpOnly; Path=/; SameSite=Lax")),
    )
}

/// `POST /_double/sign-in`: log a user in to authentik (creating it and its groups as needed).
async fn sign_in(State(ctx): St, body: Bytes) -> Result<Response, ApiError> {
    let req: SignIn = serde_json::from_slice(&body)
        .map_err(|e| ApiError::Detail(StatusCode::BAD_REQUEST, format!("sign-in body: {e}")))?;
    let mut m = ctx.shared.model();
    let user = m.ensure_user(&req)?;
    let value = m.sessions.new_core(user);
    let uid = m.users.iter().find(|u| u.pk == user).map(|u| u.uid.clone());
    Ok(axum::Json(json!({
        "user": user,
        "uid": uid,
        "groups": m.group_names(user),
        "cookie": format!("{CORE_SESSION_COOKIE}={value}"),
    }))
    .into_response())
}
