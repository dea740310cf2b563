//! One error type for every call, classified so a controller can pick requeue, `Failed` or backoff.

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;

use crate::token::ApiToken;

/// How many characters of an unexpected response body an error keeps: enough to recognise an
/// HTML error page or a truncated JSON document, short enough for a status condition.
const BODY_PREFIX_CHARS: usize = 200;

/// What went wrong on an authentik call.
///
/// `endpoint` fields read `"<METHOD> <path>"` relative to `/api/v3`, e.g.
/// `"GET /providers/proxy/12/"`. No variant ever contains the API token: response bodies are
/// redacted before any of their text is kept.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 404: the object does not exist (or the token's user may not see it).
    #[error("authentik: {endpoint}: not found")]
    NotFound {
        /// Method and path of the call.
        endpoint: String,
    },

    /// 400 (also 409 and 422): the server rejected the request. `fields` is the field-keyed
    /// body, e.g. `{"name": ["provider with this name already exists."]}`; object-level errors
    /// are under `non_field_errors`.
    #[error("authentik rejected {endpoint} (HTTP {status}): {}", format_fields(.fields))]
    Validation {
        /// Method and path of the call.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// Messages keyed by field name.
        fields: BTreeMap<String, Vec<String>>,
    },

    /// 401 or 403. authentik answers 403 for a missing, invalid or expired token as well as
    /// for a permission denial, so the two are not told apart.
    #[error(
        "authentik refused {endpoint} (HTTP {status}: {detail}): check that the API token is \
         valid and not expired, and that its user has the permissions this operation needs"
    )]
    Unauthorized {
        /// Method and path of the call.
        endpoint: String,
        /// HTTP status code (401 or 403).
        status: u16,
        /// The server's `detail` message, e.g. `Token invalid/expired`.
        detail: String,
    },

    /// 429. `retry_after` is the server's `Retry-After` (seconds), when it sent one.
    #[error("authentik rate-limited {endpoint}{}", format_retry_after(*.retry_after))]
    RateLimited {
        /// Method and path of the call.
        endpoint: String,
        /// How long the server asked us to wait.
        retry_after: Option<Duration>,
    },

    /// 5xx, 408, a timeout, a connection failure, or a 4xx this client does not expect that
    /// came without a JSON body (not an answer from authentik's API code): worth trying again
    /// later.
    #[error("authentik unavailable for {endpoint}: {reason}")]
    Transient {
        /// Method and path of the call.
        endpoint: String,
        /// What failed, e.g. `HTTP 503` or `timed out after 30s`.
        reason: String,
    },

    /// A successful response whose body does not decode into the expected type.
    #[error(
        "authentik response to {endpoint} (HTTP {status}) did not decode: {reason}; body starts: {body_prefix:?}"
    )]
    Decode {
        /// Method and path of the call.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// The decoder's message.
        reason: String,
        /// The first characters of the body, with the token redacted.
        body_prefix: String,
    },

    /// A status this client does not expect from authentik (a redirect, 405, 410, ...),
    /// usually a wrong base URL or a proxy in between.
    #[error(
        "authentik answered {endpoint} with unexpected HTTP {status}; body starts: {body_prefix:?}"
    )]
    UnexpectedStatus {
        /// Method and path of the call.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// The first characters of the body, with the token redacted.
        body_prefix: String,
    },

    /// The client refused to send the request (an empty id, a body that does not encode).
    #[error("invalid authentik request {endpoint}: {reason}")]
    InvalidRequest {
        /// Method and endpoint template of the call.
        endpoint: String,
        /// Why it was refused.
        reason: String,
    },

    /// The client configuration is unusable (bad base URL, empty token, ...).
    #[error("invalid authentik client configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

/// The decision an error calls for; see [`Error::category`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// The object is absent: create it, or treat a delete as done.
    NotFound,
    /// The request was rejected (spec problem or name/slug conflict): report `Failed`; trying
    /// again without a change will fail the same way.
    Invalid,
    /// Token or permission problem: report it and requeue slowly; an operator must act.
    Unauthorized,
    /// Back off for at least [`Error::retry_after`] before the next call.
    RateLimited,
    /// authentik is down or slow: requeue with exponential backoff.
    Transient,
    /// A bug or an incompatible server (undecodable body, unexpected status, bad config):
    /// report `Failed` and requeue slowly.
    Permanent,
}

impl ErrorCategory {
    /// A stable, low-cardinality label for metrics and condition reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Invalid => "invalid",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited => "rate_limited",
            Self::Transient => "transient",
            Self::Permanent => "permanent",
        }
    }
}

impl Error {
    /// The class of this error, which tells a controller how to react.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::NotFound { .. } => ErrorCategory::NotFound,
            Self::Validation { .. } => ErrorCategory::Invalid,
            Self::Unauthorized { .. } => ErrorCategory::Unauthorized,
            Self::RateLimited { .. } => ErrorCategory::RateLimited,
            Self::Transient { .. } => ErrorCategory::Transient,
            Self::Decode { .. }
            | Self::UnexpectedStatus { .. }
            | Self::InvalidRequest { .. }
            | Self::Config { .. } => ErrorCategory::Permanent,
        }
    }

    /// True for errors that may go away by themselves (transient or rate-limited).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.category(),
            ErrorCategory::Transient | ErrorCategory::RateLimited
        )
    }

    /// True for a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// The wait the server asked for on a 429, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The server's messages for `field` on a validation error (`non_field_errors` for
    /// object-level errors).
    pub fn field_errors(&self, field: &str) -> Option<&[String]> {
        match self {
            Self::Validation { fields, .. } => fields.get(field).map(Vec::as_slice),
            _ => None,
        }
    }

    /// True when the server rejected the request because of `field`.
    ///
    /// authentik reports a taken unique value (provider `name`, application `slug`, outpost
    /// `name`, an application's `provider`) as a 400 keyed by that field. The message wording
    /// depends on the model and the version, so only the key is checked: a caller that sent a
    /// well-formed, non-empty value can read this as "already taken".
    pub fn is_field_conflict(&self, field: &str) -> bool {
        self.field_errors(field).is_some()
    }

    /// Maps a non-success HTTP response to an error. `body` is the raw response body; it is
    /// redacted against `token` before any of it is kept.
    pub(crate) fn from_response(
        endpoint: String,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
        token: &ApiToken,
    ) -> Self {
        // Parsed as received (JSON may hold newlines between values); only what is kept is
        // made printable.
        let text = redact(body, token);
        // JSON escapes (`\u0034`, `\/`) can spell the token only after decoding: scrub the
        // decoded strings too.
        let scrub = |decoded: String| keepable(&decoded, token);
        let code = status.as_u16();
        match code {
            404 => Self::NotFound { endpoint },
            400 | 409 | 422 => Self::Validation {
                endpoint,
                status: code,
                fields: parse_field_errors(&text)
                    .into_iter()
                    .map(|(field, messages)| {
                        (scrub(field), messages.into_iter().map(scrub).collect())
                    })
                    .collect(),
            },
            401 | 403 => Self::Unauthorized {
                endpoint,
                status: code,
                detail: parse_detail(&text)
                    .map(scrub)
                    .unwrap_or_else(|| "no detail".to_owned()),
            },
            429 => Self::RateLimited {
                endpoint,
                retry_after,
            },
            408 | 500..=599 => Self::Transient {
                endpoint,
                reason: format!("HTTP {code}"),
            },
            // authentik's API code answers every error with JSON. Under load a kept-alive
            // connection the server was closing got `405` with an empty body (measured on
            // 2025.12.4), and never on a fresh connection: the request was not handled, so it is
            // safe and worth repeating. A redirect stays permanent (a wrong base URL).
            400..=499 if !is_json(&text) => Self::Transient {
                endpoint,
                reason: if text.trim().is_empty() {
                    format!("HTTP {code} with an empty body")
                } else {
                    format!(
                        "HTTP {code} with a non-JSON body: {:?}",
                        prefix(&keepable(&text, token))
                    )
                },
            },
            _ => Self::UnexpectedStatus {
                endpoint,
                status: code,
                body_prefix: prefix(&keepable(&text, token)),
            },
        }
    }

    /// A success response whose body did not decode.
    pub(crate) fn decode(
        endpoint: String,
        status: StatusCode,
        reason: &serde_json::Error,
        body: &[u8],
        token: &ApiToken,
    ) -> Self {
        Self::Decode {
            endpoint,
            status: status.as_u16(),
            // serde quotes the values it could not decode: they may hold the token.
            reason: keepable(&reason.to_string(), token),
            body_prefix: prefix(&keepable(&redact(body, token), token)),
        }
    }

    /// A request that never produced a response (timeout, refused connection, reset).
    pub(crate) fn from_transport(
        endpoint: String,
        err: &reqwest::Error,
        timeout: Duration,
    ) -> Self {
        if err.is_builder() {
            return Self::InvalidRequest {
                endpoint,
                reason: error_chain(err),
            };
        }
        let reason = if err.is_timeout() {
            format!("timed out after {}s", timeout.as_secs_f64())
        } else if err.is_connect() {
            format!("connection failed: {}", error_chain(err))
        } else {
            error_chain(err)
        };
        Self::Transient { endpoint, reason }
    }
}

/// The error's message and its causes, without the URL reqwest would add (it carries no token,
/// but query strings make messages long and noisy).
fn error_chain(err: &reqwest::Error) -> String {
    let mut out = String::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = None;
    let top = err.to_string();
    // reqwest prints "... for url (...)"; the URL is already in `endpoint`.
    out.push_str(top.split(" for url (").next().unwrap_or(&top));
    if let Some(source) = std::error::Error::source(err) {
        current = Some(source);
    }
    while let Some(source) = current {
        out.push_str(": ");
        out.push_str(&source.to_string());
        current = source.source();
    }
    out
}

/// The body as text with every occurrence of the token replaced. Redacting the whole body
/// before truncating means a cut can never leave part of the token behind.
fn redact(body: &[u8], token: &ApiToken) -> String {
    let text = String::from_utf8_lossy(body);
    if token.is_empty() {
        text.into_owned()
    } else {
        text.replace(token.expose(), "***")
    }
}

/// Server text as an error may keep it: the token redacted, and control characters written
/// as `\u{..}`. Quoting such text escapes `\0`, `\t`, `\n` and `\r` with a letter or digit
/// that joins the next characters, so a body holding NUL + the token's tail would spell the
/// token in a log line (found by the fuzzer). A `\u{..}` escape ends in `}`, which joins
/// nothing; the second pass catches a token the escaping itself completed.
fn keepable(text: &str, token: &ApiToken) -> String {
    let redacted = redact(text.as_bytes(), token);
    let mut printable = String::with_capacity(redacted.len());
    for c in redacted.chars() {
        if c.is_control() {
            printable.extend(c.escape_unicode());
        } else {
            printable.push(c);
        }
    }
    redact(printable.as_bytes(), token)
}

fn prefix(text: &str) -> String {
    text.chars().take(BODY_PREFIX_CHARS).collect()
}

fn is_json(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok()
}

/// DRF's `{"detail": "..."}` body, used for 401/403.
fn parse_detail(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value.get("detail")?.as_str().map(str::to_owned)
}

/// DRF's field-keyed validation body. Values are usually string arrays; nested serializer
/// errors are kept as JSON text, and a body that is not an object (a bare list or string, or
/// a proxy's HTML page) lands under `non_field_errors`.
fn parse_field_errors(text: &str) -> BTreeMap<String, Vec<String>> {
    let messages = |value: serde_json::Value| -> Vec<String> {
        match value {
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
            serde_json::Value::String(s) => vec![s],
            other => vec![other.to_string()],
        }
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => {
            map.into_iter().map(|(k, v)| (k, messages(v))).collect()
        }
        Ok(other) => BTreeMap::from([("non_field_errors".to_owned(), messages(other))]),
        Err(_) if text.trim().is_empty() => BTreeMap::new(),
        Err(_) => BTreeMap::from([("non_field_errors".to_owned(), vec![prefix(text)])]),
    }
}

fn format_fields(fields: &BTreeMap<String, Vec<String>>) -> String {
    if fields.is_empty() {
        return "no details".to_owned();
    }
    fields
        .iter()
        .map(|(field, messages)| format!("{field}: {}", messages.join(" ")))
        .collect::<Vec<_>>()
        .join("; ")
}

fn format_retry_after(retry_after: Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |d| {
        format!(" (retry after {}s)", d.as_secs_f64())
    })
}

/// `Retry-After` as delay-seconds (what DRF sends). An HTTP-date is treated as absent, which
/// falls back to exponential backoff.
pub(crate) fn parse_retry_after(value: Option<&http::HeaderValue>) -> Option<Duration> {
    let seconds: f64 = value?.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "tok-RECOGNISABLE-5ecret-0123456789";

    fn map(status: u16, body: &str) -> Error {
        Error::from_response(
            "POST /providers/proxy/".to_owned(),
            StatusCode::from_u16(status).expect("valid status"),
            None,
            body.as_bytes(),
            &ApiToken::new(SECRET),
        )
    }

    /// Found by the fuzz target: JSON escapes spell the token only after decoding, and serde's
    /// messages quote the values they reject.
    #[test]
    fn the_token_is_scrubbed_after_decoding_too() {
        let token = ApiToken::new("4444/4444-secret");
        let escaped = r#"{"name": ["4444\/4444-secret"], "4444\u002f4444-secret": ["x"]}"#;
        let error = Error::from_response(
            "POST /x/".into(),
            StatusCode::BAD_REQUEST,
            None,
            escaped.as_bytes(),
            &token,
        );
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("4444/4444-secret"), "{shown}");

        let body = br#"{"detail": "4444\/4444-secret"}"#;
        let error =
            Error::from_response("GET /x/".into(), StatusCode::FORBIDDEN, None, body, &token);
        assert!(!format!("{error:?}").contains("4444/4444-secret"));

        let quoted = br#""4444\/4444-secret""#;
        let reason = serde_json::from_slice::<Vec<i64>>(quoted).expect_err("not a list");
        let error = Error::decode("GET /x/".into(), StatusCode::OK, &reason, quoted, &token);
        assert!(
            !format!("{error} {error:?}").contains("4444/4444-secret"),
            "{error:?}"
        );
    }

    #[test]
    fn status_codes_map_to_categories() {
        let cases = [
            (400, ErrorCategory::Invalid),
            (409, ErrorCategory::Invalid),
            (401, ErrorCategory::Unauthorized),
            (403, ErrorCategory::Unauthorized),
            (404, ErrorCategory::NotFound),
            (408, ErrorCategory::Transient),
            (429, ErrorCategory::RateLimited),
            (500, ErrorCategory::Transient),
            (502, ErrorCategory::Transient),
            (503, ErrorCategory::Transient),
            (504, ErrorCategory::Transient),
            (301, ErrorCategory::Permanent),
            (405, ErrorCategory::Permanent),
        ];
        for (status, category) in cases {
            assert_eq!(map(status, "{}").category(), category, "HTTP {status}");
        }
    }

    /// Issue 16 (5a): a real authentik answered outpost PATCHes on kept-alive connections it
    /// was closing with an empty-bodied 405. Its API code always answers JSON, so such an
    /// answer means "not handled": transient. A JSON 405 (a wrong method) stays permanent.
    #[test]
    fn an_unexpected_status_without_a_json_body_is_transient() {
        for body in ["", "  \r\n", "<html>Method Not Allowed</html>"] {
            let err = map(405, body);
            assert_eq!(err.category(), ErrorCategory::Transient, "{body:?}: {err}");
        }
        assert!(
            map(405, "")
                .to_string()
                .contains("HTTP 405 with an empty body")
        );
        let drf = map(405, r#"{"detail": "Method \"PATCH\" not allowed."}"#);
        assert_eq!(drf.category(), ErrorCategory::Permanent);
        // A redirect is a wrong base URL, whatever its body.
        assert_eq!(map(301, "").category(), ErrorCategory::Permanent);
        assert_eq!(
            map(302, "<html>moved</html>").category(),
            ErrorCategory::Permanent
        );
    }

    #[test]
    fn validation_body_keeps_fields_and_non_field_errors() {
        let err = map(
            400,
            r#"{"name":["provider with this name already exists."],
                "non_field_errors":["Internal host cannot be empty when forward auth is disabled."],
                "code":"invalid"}"#,
        );
        assert!(err.is_field_conflict("name"));
        assert!(!err.is_field_conflict("slug"));
        assert_eq!(
            err.field_errors("non_field_errors"),
            Some(&["Internal host cannot be empty when forward auth is disabled.".to_owned()][..])
        );
        assert_eq!(err.field_errors("code"), Some(&["invalid".to_owned()][..]));
        let shown = err.to_string();
        assert!(
            shown.contains("name: provider with this name already exists."),
            "{shown}"
        );
    }

    #[test]
    fn validation_body_that_is_not_an_object_lands_in_non_field_errors() {
        let list = map(400, r#"["Embedded outpost's name cannot be changed"]"#);
        assert_eq!(
            list.field_errors("non_field_errors"),
            Some(&["Embedded outpost's name cannot be changed".to_owned()][..])
        );
        let html = map(400, "<html>Bad Request</html>");
        assert_eq!(
            html.field_errors("non_field_errors"),
            Some(&["<html>Bad Request</html>".to_owned()][..])
        );
        let nested = map(400, r#"{"config":{"log_level":["bad"]}}"#);
        assert_eq!(
            nested.field_errors("config"),
            Some(&[r#"{"log_level":["bad"]}"#.to_owned()][..])
        );
    }

    #[test]
    fn unauthorized_keeps_detail_and_asks_to_check_the_token() {
        let err = map(403, r#"{"detail":"Token invalid/expired"}"#);
        let shown = err.to_string();
        assert!(shown.contains("Token invalid/expired"), "{shown}");
        assert!(shown.contains("check that the API token"), "{shown}");
    }

    #[test]
    fn bodies_are_redacted_before_they_are_kept() {
        let echo = format!(r#"{{"detail":"bad Bearer {SECRET}","name":["{SECRET}"]}}"#);
        for status in [400, 403, 418] {
            let err = map(status, &echo);
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(SECRET), "HTTP {status}: {shown}");
            assert!(!shown.contains("5ecret"), "HTTP {status}: {shown}");
        }
        // A token straddling the cut-off point must not survive partially either.
        let long = format!("{}{SECRET}", "x".repeat(BODY_PREFIX_CHARS - 10));
        let serde_err = serde_json::from_str::<u8>("x").expect_err("not JSON");
        let err = Error::decode(
            "GET /x/".to_owned(),
            StatusCode::OK,
            &serde_err,
            long.as_bytes(),
            &ApiToken::new(SECRET),
        );
        let Error::Decode { body_prefix, .. } = &err else {
            panic!("expected Decode, got {err:?}");
        };
        assert!(!body_prefix.contains("tok-REC"), "{body_prefix}");
        assert!(body_prefix.chars().count() <= BODY_PREFIX_CHARS);
    }

    #[test]
    fn quoting_a_kept_body_never_spells_the_token() {
        // Found by the fuzzer: `{:?}` writes NUL as `\0`, and that `0` joined the token's tail.
        let token = "0199540078A777777X-0-X";
        let echo = format!("[\0{}\t{token}\n", &token[1..]);
        for status in [200, 400, 403, 418, 467, 302] {
            let status = StatusCode::from_u16(status).expect("valid status");
            let api_token = ApiToken::new(token);
            let mapped =
                Error::from_response("GET /x/".into(), status, None, echo.as_bytes(), &api_token);
            let serde_err = serde_json::from_str::<u8>(&echo).expect_err("not JSON");
            let decoded = Error::decode(
                "GET /x/".into(),
                status,
                &serde_err,
                echo.as_bytes(),
                &api_token,
            );
            for err in [mapped, decoded] {
                let shown = format!("{err} {err:?}");
                assert!(!shown.contains(token), "HTTP {status}: {shown}");
                // 401/403 keep only a JSON `detail`, not the body.
                if !matches!(err, Error::Unauthorized { .. }) {
                    assert!(
                        shown.contains("\\u{0}"),
                        "control characters stay visible: {shown}"
                    );
                }
            }
        }
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        let parse =
            |s: &str| parse_retry_after(Some(&http::HeaderValue::from_str(s).expect("ascii")));
        assert_eq!(parse("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(parse("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after(None), None);
    }
}
