//! Replays, in order, every exchange recorded from a real authentik 2025.12.4 embedded outpost
//! (`data/authentik-forward-auth-2025.12.4.json`: Traefik, Caddy, Envoy and nginx forward auth,
//! the sign-in round trip through core's authorize page, a user outside the application's
//! group) against a double set up like the recording: providers fa-single (skip_path_regex
//! `^/api/.*$`) and fa-groups (bound to group fa-group) on the embedded outpost, akadmin in
//! fa-group, fa-outsider in no group.
//!
//! Recorded values are mapped to the double's (authentik address, client ids, cookie names,
//! redacted cookies, codes and state tokens carried from earlier responses). Compared: the
//! status; every recorded header but Date/Vary/Content-Length; that no Location, Set-Cookie,
//! X-Powered-By, User-Agent or X-Authentik-* header appears that was not recorded; cookie names
//! and attributes; the authorize redirect's parameters and its state token's claims; the
//! id_token's claims; the body where it is not redacted, else its recorded prefix and shape.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use authentik_double::{ApiVersion, DoubleConfig, DoubleHandle, claims_unverified};
use common::{Api, proxy_body, start_with};
use serde_json::{Value, json};

const RECORDING: &str = include_str!("data/authentik-forward-auth-2025.12.4.json");
/// Where the recording reached authentik (the outpost's authentik_host was blank).
const RECORDED_AUTHENTIK: &str = "http://127.0.0.1:9400";
const RECORDED_HOST: &str = "127.0.0.1:9400";
/// The recording's providers, by the client id authentik gave them.
const RECORDED_CLIENTS: [(&str, &str); 2] = [
    ("fa-single", "u7tRgoufWOnVB0ikBKHvzqgEvEwILuEQyT5XuptU"),
    ("fa-groups", "Hm7tdKCxtt7BOU77Ey400SLdllZozwhrpj9fdJLG"),
];
/// Headers whose value is the response's own (time, length, request id).
const UNCOMPARED: [&str; 4] = ["date", "vary", "content-length", "x-authentik-id"];

fn cookie_name(client_id: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(client_id.as_bytes());
    let hex: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("authentik_proxy_{hex}")
}

struct Replay {
    double: DoubleHandle,
    http: reqwest::Client,
    /// Recorded text -> the double's (authentik URL, host, client ids, cookie names).
    map: Vec<(String, String)>,
    /// The outpost's cookies as last set, by name.
    jar: HashMap<String, String>,
    /// `authentik_session` cookies by username.
    core_sessions: HashMap<String, String>,
    /// The state token of the last authorize redirect, by (actual) client id.
    states: HashMap<String, String>,
    /// The last redirect core sent to the callback (path and query).
    callback: Option<String>,
    akadmin_uid: String,
}

impl Replay {
    fn map(&self, recorded: &str) -> String {
        self.map
            .iter()
            .fold(recorded.to_owned(), |s, (from, to)| s.replace(from, to))
    }

    fn client_of(&self, text: &str) -> Option<String> {
        RECORDED_CLIENTS
            .iter()
            .map(|(_, cid)| self.map(cid))
            .find(|cid| text.contains(cid.as_str()))
    }

    async fn sign_in(&mut self, username: &str, groups: &[&str], email: Option<&str>) -> Value {
        let url = format!("{}/_double/sign-in", self.double.base_url());
        let body = json!({"username": username, "groups": groups, "email": email});
        let resp = self.http.post(url).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        let cookie = v["cookie"].as_str().unwrap().to_owned();
        self.core_sessions.insert(username.to_owned(), cookie);
        v
    }

    /// The recorded request with redacted values replaced by the live ones.
    fn request(&self, exchange: &Value) -> reqwest::RequestBuilder {
        let title = exchange["title"].as_str().unwrap();
        let req = &exchange["request"];
        let mut path = self.map(req["path"].as_str().unwrap());
        if path.starts_with("/application/o/authorize/") {
            let cid = self.client_of(&path).unwrap();
            path = path.replace("<JWT-redacted#0>", &self.states[&cid]);
        }
        let method = reqwest::Method::from_bytes(req["method"].as_str().unwrap().as_bytes());
        let mut builder = self
            .http
            .request(method.unwrap(), format!("{}{path}", self.double.base_url()));
        for (name, value) in req["headers"].as_object().unwrap() {
            let value = value.as_str().unwrap();
            let value = match name.as_str() {
                "Cookie" => self.cookie(title, value),
                "X-Forwarded-Uri" if value.contains("code=") => self.callback.clone().unwrap(),
                _ => self.map(value),
            };
            builder = builder.header(name.as_str(), value);
        }
        builder
    }

    fn cookie(&self, title: &str, recorded: &str) -> String {
        recorded
            .split("; ")
            .filter_map(|pair| {
                let (name, _) = pair.split_once('=')?;
                let name = self.map(name);
                let value = if name.starts_with("authentik_proxy_") {
                    if title.contains("bogus") {
                        "bogus".to_owned()
                    } else {
                        self.jar.get(&name)?.clone()
                    }
                } else if name == "authentik_session" {
                    let user = if title.contains("fa-outsider") {
                        "fa-outsider"
                    } else {
                        "akadmin"
                    };
                    let cookie = &self.core_sessions[user];
                    return Some(cookie.clone());
                } else {
                    // authentik_device, authentik_csrf: not modelled.
                    return None;
                };
                Some(format!("{name}={value}"))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

async fn setup() -> Replay {
    // The recording's release line; the outpost names the double's patch release in
    // X-Authentik-Meta-Version where the recording has 2025.12.4.
    let version: ApiVersion = "2025.12".parse().expect("a supported release");
    let double = start_with(DoubleConfig::default().with_api_version(version)).await;
    let api = Api::new(&double);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut replay = Replay {
        map: vec![
            (RECORDED_AUTHENTIK.to_owned(), double.base_url()),
            (RECORDED_HOST.to_owned(), double.addr().to_string()),
            (
                "goauthentik.io/outpost/2025.12.4".to_owned(),
                format!("goauthentik.io/outpost/{}", version.version_string()),
            ),
        ],
        double,
        http,
        jar: HashMap::new(),
        core_sessions: HashMap::new(),
        states: HashMap::new(),
        callback: None,
        akadmin_uid: String::new(),
    };
    let admin = replay
        .sign_in("akadmin", &["fa-group"], Some("akadmin@example.com"))
        .await;
    replay.akadmin_uid = admin["uid"].as_str().unwrap().to_owned();
    replay.sign_in("fa-outsider", &[], None).await;
    let fa_group = replay.double.with_state(|m| {
        m.groups
            .iter()
            .find(|g| g.name == "fa-group")
            .map(|g| g.pk)
            .unwrap()
    });
    let mut providers = Vec::new();
    for (name, recorded_client) in RECORDED_CLIENTS {
        let mut body = proxy_body(&replay.double, name);
        if name == "fa-single" {
            body["skip_path_regex"] = json!("^/api/.*$");
        }
        let (status, provider) = api.post("/providers/proxy/", body).await;
        assert_eq!(status, 201, "{provider}");
        providers.push(provider["pk"].clone());
        let client_id = provider["client_id"].as_str().unwrap();
        replay
            .map
            .push((recorded_client.to_owned(), client_id.to_owned()));
        replay
            .map
            .push((cookie_name(recorded_client), cookie_name(client_id)));
        let app = json!({"name": name, "slug": name, "provider": provider["pk"]});
        let (status, app) = api.post("/core/applications/", app).await;
        assert_eq!(status, 201, "{app}");
        if name == "fa-groups" {
            let binding = json!({"group": fa_group, "target": app["pk"], "order": 0});
            let (status, b) = api.post("/policies/bindings/", binding).await;
            assert_eq!(status, 201, "{b}");
        }
    }
    let outpost = replay.double.embedded_outpost_uuid();
    let (status, body) = api
        .patch(
            &format!("/outposts/instances/{outpost}/"),
            json!({"providers": providers}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    replay
}

/// `name=value; Attr=..; Flag` → (name, attributes without Expires, Expires, Max-Age).
fn parse_set_cookie(s: &str) -> (String, Vec<String>, Option<SystemTime>, u64) {
    let mut parts = s.split("; ");
    let name = parts
        .next()
        .and_then(|p| p.split_once('='))
        .map(|(n, _)| n.to_owned())
        .unwrap_or_default();
    let (mut attrs, mut expires, mut max_age) = (Vec::new(), None, 0);
    for p in parts {
        if let Some(e) = p.strip_prefix("Expires=") {
            expires = httpdate::parse_http_date(e).ok();
            continue;
        }
        if let Some(m) = p.strip_prefix("Max-Age=") {
            max_age = m.parse().unwrap_or(0);
        }
        attrs.push(p.to_owned());
    }
    (name, attrs, expires, max_age)
}

/// Claim names, sorted (empty for anything but an object).
fn sorted_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn title_of(html: &str) -> Option<&str> {
    let start = html.find("<title>")? + "<title>".len();
    let end = html[start..].find("</title>")? + start;
    Some(html[start..end].trim())
}

fn query_pairs(location: &str) -> Vec<(String, String)> {
    url::Url::parse(location)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// Every difference between one recorded exchange and the double's answer.
async fn replay_one(r: &mut Replay, exchange: &Value) -> Vec<String> {
    let title = exchange["title"].as_str().unwrap();
    let recorded = &exchange["response"];
    let jwt_claims = exchange["jwt_claims_decoded"].as_array();
    let recorded_path = r.map(exchange["request"]["path"].as_str().unwrap());
    let sent_state = r
        .client_of(&recorded_path)
        .and_then(|cid| r.states.get(&cid).cloned());
    let resp = r.request(exchange).send().await.unwrap();
    let sent_at = SystemTime::now();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap();
    let mut diffs = Vec::new();
    let mut diff = |what: String| diffs.push(format!("{title}: {what}"));

    if recorded["status_code"] != json!(status) {
        diff(format!(
            "status {status}, recorded {}",
            recorded["status_code"]
        ));
    }
    let recorded_headers: Vec<(String, String)> = recorded["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap().to_ascii_lowercase(),
                r.map(h[1].as_str().unwrap()),
            )
        })
        .collect();
    let recorded_value = |name: &str| {
        recorded_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let actual = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());

    // Headers the recording does not have must not appear.
    for name in headers.keys().map(|n| n.as_str()) {
        let guarded = ["location", "set-cookie", "x-powered-by", "user-agent"].contains(&name)
            || name.starts_with("x-authentik-") && name != "x-authentik-id";
        if guarded && recorded_value(name).is_none() {
            diff(format!("unexpected header {name}: {:?}", actual(name)));
        }
    }
    for (name, value) in &recorded_headers {
        if UNCOMPARED.contains(&name.as_str()) {
            if name == "x-authentik-id" && actual(name).is_none_or(|v| v.len() != 32) {
                diff("no 32-character X-Authentik-Id".into());
            }
            continue;
        }
        let Some(got) = actual(name) else {
            diff(format!("missing header {name}"));
            continue;
        };
        match name.as_str() {
            "set-cookie" | "location" => {}
            "x-authentik-jwt" => {
                let claims = claims_unverified(got).unwrap_or_default();
                let rec = &jwt_claims.unwrap()[0];
                if sorted_keys(&claims).is_empty() || sorted_keys(&claims) != sorted_keys(rec) {
                    diff(format!(
                        "id_token claims {claims}, recorded keys {:?}",
                        sorted_keys(rec)
                    ));
                    continue;
                }
                for k in [
                    "email",
                    "email_verified",
                    "entitlements",
                    "roles",
                    "name",
                    "given_name",
                    "preferred_username",
                    "nickname",
                    "groups",
                    "acr",
                    "amr",
                    "scope",
                    "ak_proxy",
                    "iss",
                    "aud",
                    "azp",
                ] {
                    let want: Value = serde_json::from_str(&r.map(&rec[k].to_string())).unwrap();
                    if claims[k] != want {
                        diff(format!("id_token {k} = {}, recorded {want}", claims[k]));
                    }
                }
                if claims["sub"] != json!(r.akadmin_uid) {
                    diff(format!(
                        "id_token sub {} is not the user's uid",
                        claims["sub"]
                    ));
                }
            }
            "x-authentik-uid" => {
                if got != r.akadmin_uid || got.len() != 64 {
                    diff(format!("uid {got}, the user's is {}", r.akadmin_uid));
                }
            }
            _ => {
                if got != value {
                    diff(format!("header {name} = {got:?}, recorded {value:?}"));
                }
            }
        }
    }

    // Cookies: the same names, attributes and lifetime.
    let recorded_cookies: Vec<_> = recorded_headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| parse_set_cookie(v))
        .collect();
    let actual_cookies: Vec<_> = headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if recorded_cookies.len() != actual_cookies.len() {
        diff(format!(
            "cookies {actual_cookies:?}, recorded {recorded_cookies:?}"
        ));
    }
    for (raw, want) in actual_cookies.iter().zip(&recorded_cookies) {
        let got = parse_set_cookie(raw);
        if (&got.0, &got.1) != (&want.0, &want.1) {
            diff(format!("cookie {raw:?}, recorded {want:?}"));
        }
        let expected = sent_at + Duration::from_secs(got.3);
        let off = got.2.and_then(|e| {
            e.duration_since(expected)
                .or_else(|e| Ok::<_, ()>(e.duration()))
                .ok()
        });
        if want.2.is_some() && off.is_none_or(|d| d > Duration::from_secs(5)) {
            diff(format!("cookie expiry {:?} is not now + Max-Age", got.2));
        }
        if let Some((name, value)) = raw.split(';').next().and_then(|p| p.split_once('=')) {
            r.jar.insert(name.to_owned(), value.to_owned());
        }
    }

    // Redirects.
    if let (Some(want), Some(got)) = (recorded_value("location"), actual("location")) {
        if want.contains("/application/o/authorize/") {
            let (w, g) = (query_pairs(&want), query_pairs(got));
            let names = |v: &[(String, String)]| v.iter().map(|p| p.0.clone()).collect::<Vec<_>>();
            let base = |s: &str| s.split('?').next().unwrap_or_default().to_owned();
            if base(&want) != base(got) || names(&w) != names(&g) {
                diff(format!("location {got}, recorded {want}"));
            }
            for ((k, wv), (_, gv)) in w.iter().zip(&g) {
                if k != "state" && wv != gv {
                    diff(format!("location {k}={gv}, recorded {wv}"));
                }
            }
            let state = g.iter().find(|p| p.0 == "state").map(|p| p.1.clone());
            let claims = state
                .as_deref()
                .and_then(claims_unverified)
                .unwrap_or_default();
            let rec = &jwt_claims.unwrap()[0];
            if sorted_keys(&claims) != sorted_keys(rec)
                || claims["iss"].as_str().map(str::to_owned)
                    != rec["iss"].as_str().map(|s| r.map(s))
                || claims["redirect"] != rec["redirect"]
                || claims["state"].as_str().is_none_or(str::is_empty)
            {
                diff(format!("state claims {claims}, recorded {rec}"));
            }
            // A cookie the outpost does not know leaves the state without a session id.
            if claims["sid"].as_str().is_none_or(str::is_empty) != title.contains("bogus") {
                diff(format!("state sid {}", claims["sid"]));
            }
            if let (Some(cid), Some(state)) = (r.client_of(got), state) {
                r.states.insert(cid, state);
            }
        } else if want.contains("code=") {
            let prefix = |s: &str| s.split("code=").next().unwrap_or_default().to_owned();
            let g = query_pairs(got);
            let state = g.iter().find(|p| p.0 == "state").map(|p| p.1.clone());
            if prefix(&want) != prefix(got) || state != sent_state {
                diff(format!("callback redirect {got}, recorded {want}"));
            }
            let url = url::Url::parse(got).unwrap();
            r.callback = Some(format!(
                "{}?{}",
                url.path(),
                url.query().unwrap_or_default()
            ));
        } else if got != want {
            diff(format!("location {got}, recorded {want}"));
        }
        // Go's http.Redirect body around the Location.
        if want.contains("/application/o/authorize/") || !want.contains("code=") && status == 302 {
            let escaped = got.replace('&', "&amp;");
            if recorded["body_length"] != json!(0)
                && body != format!("<a href=\"{escaped}\">Found</a>.\n\n")
            {
                diff(format!("redirect body {body:?}"));
            }
        }
    }

    // Bodies: exact where the recording has all of it, else its prefix and title.
    let head = r.map(recorded["body_head"].as_str().unwrap());
    let complete = recorded["body_length"] == json!(recorded["body_head"].as_str().unwrap().len());
    if complete && !head.contains("redacted") {
        if body != head {
            diff(format!("body {body:?}, recorded {head:?}"));
        }
    } else if !body.starts_with(&head) {
        diff(format!("body does not start like the recording: {body:?}"));
    }
    let excerpt = recorded["body_excerpt_around_permission_denied"]
        .as_str()
        .unwrap_or(&head);
    let recorded_title =
        title_of(excerpt).filter(|t| !t.is_empty() && excerpt.contains("</title>"));
    if let Some(want) = recorded_title
        && title_of(&body) != Some(want)
    {
        diff(format!(
            "page title {:?}, recorded {want:?}",
            title_of(&body)
        ));
    }
    diffs
}

#[tokio::test]
async fn outpost_answers_recorded_forward_auth_exchanges_like_authentik_2025_12_4() {
    let recording: Vec<Value> = serde_json::from_str(RECORDING).unwrap();
    let exchanges: Vec<&Value> = recording
        .iter()
        .filter(|e| e.get("request").is_some())
        .collect();
    assert_eq!(exchanges.len(), 37, "every recorded exchange is replayed");
    let mut replay = setup().await;
    let mut diffs = Vec::new();
    for exchange in exchanges {
        diffs.extend(replay_one(&mut replay, exchange).await);
    }
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

// Behaviour the recording does not cover, kept small and documented in the crate docs.

#[tokio::test]
async fn sign_in_rejects_bad_bodies_with_one_line() {
    let r = setup().await;
    let url = format!("{}/_double/sign-in", r.double.base_url());
    for body in [
        json!({}),
        json!({"username": " "}),
        json!({"username": "a", "x": 1}),
    ] {
        let resp = r.http.post(&url).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let text = resp.text().await.unwrap();
        assert!(!text.contains('\n'), "one line: {text}");
    }
}

#[tokio::test]
async fn authorize_without_a_session_goes_to_login_and_checks_the_redirect_uri() {
    let r = setup().await;
    let client = r.map(RECORDED_CLIENTS[0].1);
    let authorize = |redirect: &str, cookie: Option<&str>| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &client)
            .append_pair("redirect_uri", redirect)
            .append_pair("state", "s")
            .finish();
        let mut req = r.http.get(format!(
            "{}/application/o/authorize/?{query}",
            r.double.base_url()
        ));
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        req.send()
    };
    let good = "https://fa-single.example.com/outpost.goauthentik.io/callback?X-authentik-auth-callback=true";
    let resp = authorize(good, None).await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap();
    assert!(
        location
            .starts_with("/flows/-/default/authentication/?next=%2Fapplication%2Fo%2Fauthorize%2F"),
        "{location}"
    );
    let session = r.core_sessions["akadmin"].clone();
    let resp = authorize("https://evil.example.com/cb", Some(&session))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = authorize(good, Some(&session)).await.unwrap();
    assert_eq!(resp.status(), 302);
}

#[tokio::test]
async fn a_provider_off_the_embedded_outpost_is_not_served() {
    let r = setup().await;
    let outpost = r.double.embedded_outpost_uuid();
    assert!(r.double.set_outpost_providers(outpost, Vec::new()));
    let resp = r
        .http
        .get(format!(
            "{}/outpost.goauthentik.io/auth/traefik",
            r.double.base_url()
        ))
        .header("X-Forwarded-Host", "fa-single.example.com")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Uri", "/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        404,
        "core answers for a host no outpost provider serves"
    );
}
