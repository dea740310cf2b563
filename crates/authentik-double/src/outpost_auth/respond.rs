//! The responses, shaped as recorded from authentik 2025.12.4: the outpost's (Go `net/http`
//! style: `X-Powered-By: authentik_proxy2`, `http.Redirect` bodies, `http.Error` texts) and
//! core's HTML pages (404, "Permission denied").

use std::time::{Duration, SystemTime};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ring::digest;

use crate::model::Identity;

/// Scopes the outpost asks for (the proxy provider's scope mappings, sorted).
const SCOPES: &str = "email entitlements openid profile ak_proxy";
const POWERED_BY: &str = "authentik_proxy2";

/// `authentik_proxy_<first 8 hex of sha256(client_id)>`: one cookie per provider.
pub(crate) fn cookie_name(client_id: &str) -> String {
    let hash = digest::digest(&digest::SHA256, client_id.as_bytes());
    let hex: String = hash.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("authentik_proxy_{hex}")
}

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn request_cookie<'a>(
    headers: &'a axum::http::HeaderMap,
    name: &str,
) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// How the outpost's session cookie is set for one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CookiePolicy {
    /// `authentik_proxy_…`.
    pub name: String,
    /// Secure when the external host is https.
    pub secure: bool,
    /// The provider's cookie domain (forward_domain), empty for none.
    pub domain: String,
    /// Seconds: the access token validity plus one on the first redirect, as recorded.
    pub max_age: u64,
}

impl CookiePolicy {
    /// `Set-Cookie` value expiring `max_age` seconds after `now`.
    pub(crate) fn set_cookie(&self, value: &str, max_age: u64, now: SystemTime) -> String {
        let expires = httpdate::fmt_http_date(now + Duration::from_secs(max_age));
        let domain = if self.domain.is_empty() {
            String::new()
        } else {
            format!("; Domain={}", self.domain.trim_start_matches('.'))
        };
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/{domain}; Expires={expires}; Max-Age={max_age}; HttpOnly{secure}; SameSite=Lax",
            self.name
        )
    }
}

/// `{authentik}/application/o/authorize/?client_id=…&redirect_uri=…&response_type=code&scope=…&state=…`
/// (Go's `url.Values.Encode`: keys sorted, form encoding).
pub(crate) fn authorize_url(
    authentik: &str,
    client_id: &str,
    external_host: &str,
    state: &str,
) -> String {
    let redirect_uri = format!(
        "{}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true",
        external_host.trim_end_matches('/')
    );
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", SCOPES)
        .append_pair("state", state)
        .finish();
    format!(
        "{}/application/o/authorize/?{query}",
        authentik.trim_end_matches('/')
    )
}

/// Go's `html.EscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn with_cookie(mut response: Response, set_cookie: Option<String>) -> Response {
    if let Some(value) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `302 Found` with Go's redirect body.
pub(crate) fn found(location: &str, set_cookie: Option<String>) -> Response {
    let body = format!("<a href=\"{}\">Found</a>.\n\n", html_escape(location));
    let response = (
        StatusCode::FOUND,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::LOCATION, location),
        ],
        body,
    )
        .into_response();
    with_cookie(response, set_cookie)
}

/// Go's `http.Error`.
fn plain_error(status: StatusCode, text: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{text}\n"),
    )
        .into_response()
}

/// nginx without a session: 401, the redirect stored in the session only.
pub(crate) fn unauthorized(set_cookie: Option<String>) -> Response {
    with_cookie(
        plain_error(StatusCode::UNAUTHORIZED, "unauthorized request"),
        set_cookie,
    )
}

/// Forward-auth headers missing.
pub(crate) fn configuration_error() -> Response {
    plain_error(StatusCode::INTERNAL_SERVER_ERROR, "configuration error")
}

/// A skipped path without a session: 200, nothing but `X-Powered-By`.
pub(crate) fn skipped() -> Response {
    (StatusCode::OK, [("x-powered-by", POWERED_BY)]).into_response()
}

/// What the identity headers say about the application.
#[derive(Debug, Clone)]
pub(crate) struct Meta<'a> {
    pub jwks: String,
    pub outpost: &'a str,
    pub provider: &'a str,
    pub app: &'a str,
    pub version: &'a str,
}

/// 200 with the `X-Authentik-*` headers. nginx's answer lacks `X-Powered-By` (the outpost
/// writes its status before the header is added).
pub(crate) fn identity(
    who: &Identity,
    meta: &Meta<'_>,
    user_agent: Option<&HeaderValue>,
    powered_by: bool,
) -> Response {
    let groups = who.groups.join("|");
    let version = format!("goauthentik.io/outpost/{}", meta.version);
    let pairs: [(&str, &str); 12] = [
        ("x-authentik-username", &who.username),
        ("x-authentik-groups", &groups),
        ("x-authentik-entitlements", ""),
        ("x-authentik-email", &who.email),
        ("x-authentik-name", &who.name),
        ("x-authentik-uid", &who.uid),
        ("x-authentik-jwt", &who.id_token),
        ("x-authentik-meta-jwks", &meta.jwks),
        ("x-authentik-meta-outpost", meta.outpost),
        ("x-authentik-meta-provider", meta.provider),
        ("x-authentik-meta-app", meta.app),
        ("x-authentik-meta-version", &version),
    ];
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
    headers.insert(
        header::USER_AGENT,
        user_agent
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("")),
    );
    if powered_by {
        headers.insert("x-powered-by", HeaderValue::from_static(POWERED_BY));
    }
    response
}

/// Headers every core (Django) response carries; `X-Authentik-Id` is a request id.
fn core_response(status: StatusCode, body: String, set_cookie: Option<String>) -> Response {
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_LANGUAGE, "en"),
            (header::REFERRER_POLICY, "same-origin"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::HeaderName::from_static("x-powered-by"), "authentik"),
        ],
        body,
    )
        .into_response();
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string()) {
        response.headers_mut().insert("x-authentik-id", id);
    }
    with_cookie(response, set_cookie)
}

/// A core HTML page: the recorded head, then a minimal body.
fn core_page(status: StatusCode, title: &str, message: &str) -> Response {
    let html = format!(
        "\n\n\n\n\n<!DOCTYPE html>\n<html\n    lang=\"en\"\n    data-theme=\"light\"\n    data-theme-choice=\"auto\"\n>\n    <head>\n        <meta charset=\"UTF-8\">\n        <meta name=\"viewport\" content=\"width=device-width, initial-scale=1, maximum-scale=1\">\n        \n        <meta name=\"darkreader-lock\">\n        <title>\n{title}\n</title>\n    </head>\n    <body>\n        <h1>{title}</h1>\n        <p>{message}</p>\n    </body>\n</html>\n"
    );
    core_response(status, html, None)
}

/// Core's 404: an unknown host falls through the outpost to core.
pub(crate) fn core_not_found() -> Response {
    core_page(StatusCode::NOT_FOUND, "authentik", "Not found.")
}

/// The authorize page refusing a signed-in user the application's policies deny.
pub(crate) fn permission_denied() -> Response {
    core_page(
        StatusCode::OK,
        "Permission denied - authentik",
        "Permission denied: you do not have access to this application.",
    )
}

/// The authorize page refusing a redirect_uri the provider does not list.
pub(crate) fn redirect_uri_error() -> Response {
    core_page(
        StatusCode::BAD_REQUEST,
        "Redirect URI Error - authentik",
        "The request fails due to a missing, invalid, or mismatching redirection URI (redirect_uri).",
    )
}

/// A core 302 (authorize → callback, authorize → login), with its session cookie.
pub(crate) fn core_found(location: &str, set_cookie: Option<String>) -> Response {
    let mut response = core_response(StatusCode::FOUND, String::new(), set_cookie);
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_names_are_the_first_four_bytes_of_the_client_id_hash() {
        // Client ids and cookie names recorded from authentik 2025.12.4.
        assert_eq!(
            cookie_name("u7tRgoufWOnVB0ikBKHvzqgEvEwILuEQyT5XuptU"),
            "authentik_proxy_c38351fd"
        );
        assert_eq!(
            cookie_name("Hm7tdKCxtt7BOU77Ey400SLdllZozwhrpj9fdJLG"),
            "authentik_proxy_71c67acd"
        );
    }

    #[test]
    fn set_cookie_carries_the_recorded_attributes() {
        let policy = CookiePolicy {
            name: "authentik_proxy_c38351fd".into(),
            secure: true,
            domain: String::new(),
            max_age: 3601,
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_570_174);
        assert_eq!(
            policy.set_cookie("v", 3601, now),
            "authentik_proxy_c38351fd=v; Path=/; Expires=Sun, 06 Dec 2026 16:16:15 GMT; Max-Age=3601; HttpOnly; Secure; SameSite=Lax"
        );
        let domain = CookiePolicy {
            domain: ".example.com".into(),
            secure: false,
            ..policy
        };
        let c = domain.set_cookie("v", 10, now);
        assert!(
            c.contains("; Domain=example.com;") && !c.contains("Secure"),
            "{c}"
        );
    }

    #[test]
    fn the_authorize_url_is_form_encoded_with_sorted_keys() {
        assert_eq!(
            authorize_url(
                "http://127.0.0.1:9400",
                "cid",
                "https://fa-single.example.com",
                "S.T"
            ),
            "http://127.0.0.1:9400/application/o/authorize/?client_id=cid&redirect_uri=https%3A%2F%2Ffa-single.example.com%2Foutpost.goauthentik.io%2Fcallback%3FX-authentik-auth-callback%3Dtrue&response_type=code&scope=email+entitlements+openid+profile+ak_proxy&state=S.T"
        );
    }

    #[test]
    fn request_cookies_are_found_by_exact_name() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("authentik_proxy_a=1; authentik_proxy_ab=2"),
        );
        assert_eq!(request_cookie(&h, "authentik_proxy_ab"), Some("2"));
        assert_eq!(request_cookie(&h, "authentik_proxy_a"), Some("1"));
        assert_eq!(request_cookie(&h, "authentik_proxy_b"), None);
    }
}
