//! What the embedded outpost decides for one forward-auth request, as pure functions: which
//! original request the proxy asks about, whether its path skips authentication, and the
//! answer given the session the request carries.

use axum::http::HeaderMap;
use regex::Regex;

use crate::model::Identity;

/// Envoy's ext_authz appends the original path to this prefix.
pub(crate) const ENVOY_PREFIX: &str = "/outpost.goauthentik.io/auth/envoy";
/// Path of the OAuth callback on the application's host.
pub(crate) const CALLBACK_PATH: &str = "/outpost.goauthentik.io/callback";

/// The forward-auth endpoint a reverse proxy calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/auth/traefik`: X-Forwarded-Proto/Host/Uri.
    Traefik,
    /// `/auth/caddy`: the same headers and code path as Traefik.
    Caddy,
    /// `/auth/nginx`: X-Original-URL (or X-Original-URI); answers 401 instead of redirecting.
    Nginx,
    /// `/auth/envoy/<original path>`: Host is the original host.
    Envoy,
}

/// The proxied request the reverse proxy asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Original {
    /// As the outpost rebuilds it, unnormalised (`https://host` stays without a slash).
    pub url: String,
    /// Path only (what `skip_path_regex` sees in forward_single mode).
    pub path: String,
    /// Query string without `?`.
    pub query: String,
}

impl Original {
    fn new(scheme: &str, host: &str, path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Original {
            url: format!("{scheme}://{host}{path_and_query}"),
            path: path.to_owned(),
            query: query.to_owned(),
        }
    }

    /// The OAuth callback (`/outpost.goauthentik.io/callback?X-authentik-auth-callback=true`)
    /// arriving through forward auth: its code and state.
    pub(crate) fn callback(&self) -> Option<(String, String)> {
        if self.path != CALLBACK_PATH {
            return None;
        }
        let params: Vec<(String, String)> = url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        (get("X-authentik-auth-callback").as_deref() == Some("true"))
            .then(|| Some((get("code")?, get("state")?)))
            .flatten()
    }
}

/// The proxy did not send the headers its endpoint needs: 500 `configuration error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Misconfigured;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// The host an application is looked up by: X-Forwarded-Host, else Host.
pub(crate) fn request_host(headers: &HeaderMap) -> Option<&str> {
    header(headers, "x-forwarded-host").or_else(|| header(headers, "host"))
}

/// The original request, from the headers `endpoint` relies on. `envoy_path` is what followed
/// the Envoy prefix (path and query); `default_scheme` is the external host's, used when a
/// proxy that may omit it (nginx with X-Original-URI, Envoy) does.
pub(crate) fn original(
    endpoint: Endpoint,
    headers: &HeaderMap,
    envoy_path: &str,
    default_scheme: &str,
) -> Result<Original, Misconfigured> {
    let host = request_host(headers).unwrap_or_default();
    match endpoint {
        Endpoint::Traefik | Endpoint::Caddy => {
            let proto = header(headers, "x-forwarded-proto").ok_or(Misconfigured)?;
            let uri = header(headers, "x-forwarded-uri").ok_or(Misconfigured)?;
            Ok(Original::new(proto, host, uri))
        }
        Endpoint::Nginx => {
            if let Some(full) = header(headers, "x-original-url") {
                let (scheme, rest) = full.split_once("://").ok_or(Misconfigured)?;
                let split = rest.find(['/', '?']).unwrap_or(rest.len());
                let (authority, path_and_query) = rest.split_at(split);
                return Ok(Original::new(scheme, authority, path_and_query));
            }
            let uri = header(headers, "x-original-uri").ok_or(Misconfigured)?;
            let scheme = header(headers, "x-forwarded-proto").unwrap_or(default_scheme);
            Ok(Original::new(scheme, host, uri))
        }
        Endpoint::Envoy => {
            let scheme = header(headers, "x-forwarded-proto").unwrap_or(default_scheme);
            Ok(Original::new(scheme, host, envoy_path))
        }
    }
}

/// `skip_path_regex`: one regex per line, unanchored (Go's `MatchString`), lines that do not
/// compile ignored as the outpost does. forward_single and proxy mode match the path,
/// forward_domain the whole URL.
pub(crate) fn skips_auth(skip_path_regex: &str, mode: &str, original: &Original) -> bool {
    let subject = if mode == "forward_domain" {
        &original.url
    } else {
        &original.path
    };
    skip_path_regex
        .split('\n')
        .filter(|line| !line.is_empty())
        .filter_map(|line| Regex::new(line).ok())
        .any(|re| re.is_match(subject))
}

/// The session a request carries for the matched provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Session<'a> {
    /// No cookie for this provider.
    Absent,
    /// A cookie the outpost does not know (forged, expired, from a reset double).
    Unknown,
    /// A session from an earlier redirect, not signed in (yet).
    Anonymous,
    /// Signed in.
    Signed(&'a Identity),
}

/// The outpost's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision<'a> {
    /// 500 `configuration error`.
    Misconfigured,
    /// 200 with the identity headers.
    Identity(&'a Identity),
    /// 200 without identity: the path skips authentication.
    Skip,
    /// The OAuth callback: redeem the code, then redirect to the state's URL.
    Callback { code: String, state: String },
    /// Send the user to sign in, then back to `redirect`.
    SignIn { redirect: String },
}

/// A signed-in session always wins (skipped paths get the identity too); then skipped paths;
/// then the callback; everything else signs in. The outpost never refuses a signed-in user:
/// application policies are enforced only by the authorize page.
pub(crate) fn decide<'a>(
    original: Result<Original, Misconfigured>,
    session: Session<'a>,
    skip_path_regex: &str,
    mode: &str,
) -> Decision<'a> {
    let Ok(original) = original else {
        return Decision::Misconfigured;
    };
    if let Session::Signed(identity) = session {
        return Decision::Identity(identity);
    }
    if skips_auth(skip_path_regex, mode, &original) {
        return Decision::Skip;
    }
    if let Some((code, state)) = original.callback() {
        return Decision::Callback { code, state };
    }
    Decision::SignIn {
        redirect: original.url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                *k,
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        h
    }

    fn identity() -> Identity {
        Identity {
            user: 3,
            username: "akadmin".into(),
            email: "a@example.com".into(),
            name: "A".into(),
            uid: "u".into(),
            groups: vec![],
            id_token: "t".into(),
        }
    }

    const TRAEFIK: [(&str, &str); 3] = [
        ("x-forwarded-host", "app.example.com"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-uri", "/some/page?x=1"),
    ];

    #[test]
    fn traefik_and_caddy_rebuild_the_url_from_forwarded_headers() {
        for endpoint in [Endpoint::Traefik, Endpoint::Caddy] {
            let o = original(endpoint, &headers(&TRAEFIK), "", "http").unwrap_or_else(|_| {
                panic!("{endpoint:?} reads the forwarded headers");
            });
            assert_eq!(o.url, "https://app.example.com/some/page?x=1");
            assert_eq!((o.path.as_str(), o.query.as_str()), ("/some/page", "x=1"));
        }
        let missing = headers(&[("x-forwarded-host", "app.example.com")]);
        assert_eq!(
            original(Endpoint::Traefik, &missing, "", "https"),
            Err(Misconfigured)
        );
    }

    #[test]
    fn nginx_reads_the_original_url_or_uri() {
        let full = headers(&[("x-original-url", "https://app.example.com/api/x?y=1")]);
        let o = original(Endpoint::Nginx, &full, "", "http").ok();
        assert_eq!(
            o.map(|o| (o.url, o.path)),
            Some(("https://app.example.com/api/x?y=1".into(), "/api/x".into()))
        );
        let uri = headers(&[("host", "app.example.com"), ("x-original-uri", "/")]);
        let o = original(Endpoint::Nginx, &uri, "", "https").ok();
        assert_eq!(o.map(|o| o.url), Some("https://app.example.com/".into()));
        let none = headers(&[("host", "app.example.com")]);
        assert_eq!(
            original(Endpoint::Nginx, &none, "", "https"),
            Err(Misconfigured)
        );
    }

    #[test]
    fn envoy_takes_whatever_follows_the_prefix() {
        let h = headers(&[("host", "app.example.com"), ("x-forwarded-proto", "https")]);
        let url = |rest| {
            original(Endpoint::Envoy, &h, rest, "http")
                .ok()
                .map(|o| o.url)
        };
        assert_eq!(url(""), Some("https://app.example.com".into()));
        assert_eq!(url("/a?b=1"), Some("https://app.example.com/a?b=1".into()));
    }

    #[test]
    fn skip_regex_matches_the_path_in_single_mode_and_the_url_in_domain_mode() {
        let o = Original::new("https", "app.example.com", "/api/health?x=1");
        assert!(skips_auth("^/api/.*$", "forward_single", &o));
        assert!(!skips_auth("^/api/.*$", "forward_domain", &o));
        assert!(skips_auth(
            "^https://app[.]example[.]com/api/",
            "forward_domain",
            &o
        ));
        let apix = Original::new("https", "app.example.com", "/apix");
        assert!(!skips_auth("^/api/.*$", "forward_single", &apix));
        // Lines that do not compile are ignored; the others still apply.
        assert!(skips_auth("(\n^/api/", "forward_single", &o));
        assert!(!skips_auth("", "forward_single", &o));
    }

    #[test]
    fn a_session_wins_then_skip_then_callback_then_sign_in() {
        let id = identity();
        let skip = Original::new("https", "h", "/api/x");
        let page = Original::new("https", "h", "/page");
        let cb = Original::new(
            "https",
            "h",
            "/outpost.goauthentik.io/callback?X-authentik-auth-callback=true&code=c&state=s",
        );
        let r = "^/api/";
        let m = "forward_single";
        assert_eq!(
            decide(Ok(skip.clone()), Session::Signed(&id), r, m),
            Decision::Identity(&id)
        );
        assert_eq!(decide(Ok(skip), Session::Absent, r, m), Decision::Skip);
        assert_eq!(
            decide(Ok(cb), Session::Anonymous, r, m),
            Decision::Callback {
                code: "c".into(),
                state: "s".into()
            }
        );
        for session in [Session::Absent, Session::Unknown, Session::Anonymous] {
            assert_eq!(
                decide(Ok(page.clone()), session, r, m),
                Decision::SignIn {
                    redirect: "https://h/page".into()
                }
            );
        }
        assert_eq!(
            decide(Err(Misconfigured), Session::Signed(&id), r, m),
            Decision::Misconfigured
        );
    }

    #[test]
    fn a_callback_without_its_marker_or_code_is_an_ordinary_path() {
        let no_marker = Original::new("https", "h", "/outpost.goauthentik.io/callback?code=c");
        assert_eq!(no_marker.callback(), None);
        let no_code = Original::new(
            "https",
            "h",
            "/outpost.goauthentik.io/callback?X-authentik-auth-callback=true&state=s",
        );
        assert_eq!(no_code.callback(), None);
    }
}
