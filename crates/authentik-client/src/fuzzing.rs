//! Entry point for the fuzz target in `fuzz/`: everything that turns server bytes into values.
//! Not part of the supported API.

use http::StatusCode;

use crate::error::Error;
use crate::models::{
    Application, Flow, Group, Outpost, Paginated, PolicyBinding, ProviderSummary, ProxyProvider,
    SessionUser, Version,
};
use crate::token::ApiToken;

fn decodes<T: serde::de::DeserializeOwned>(body: &[u8]) {
    let _ = serde_json::from_slice::<T>(body);
}

/// Decodes `body` as every response type and maps it as an error response with `status`.
/// Must never panic, and no error built from it may show `token`.
pub fn parse_response(status: u16, body: &[u8], token: &str) {
    decodes::<Paginated<ProxyProvider>>(body);
    decodes::<ProxyProvider>(body);
    decodes::<Paginated<Application>>(body);
    decodes::<Application>(body);
    decodes::<Paginated<Outpost>>(body);
    decodes::<Outpost>(body);
    decodes::<Paginated<Flow>>(body);
    decodes::<Paginated<Group>>(body);
    decodes::<Paginated<PolicyBinding>>(body);
    decodes::<Paginated<ProviderSummary>>(body);
    decodes::<Version>(body);
    decodes::<SessionUser>(body);

    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let api_token = ApiToken::new(token);
    let mapped = Error::from_response("GET /x/".into(), status, None, body, &api_token);
    let reason = serde_json::from_slice::<ProxyProvider>(body).err();
    let decode_error =
        reason.map(|r| Error::decode("GET /x/".into(), status, &r, body, &api_token));
    let secret = api_token.expose();
    // Real tokens are long random mixes of letters and digits (authentik's are 60 characters);
    // short or digit-only ones turn up by coincidence.
    let realistic = secret.len() >= 16
        && secret.chars().any(|c| c.is_ascii_alphabetic())
        && secret.chars().any(|c| c.is_ascii_digit())
        && secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c));
    if !realistic {
        return;
    }
    for error in std::iter::once(mapped).chain(decode_error) {
        // The text an error carries, and what logs print: Display and Debug add quotes and
        // escapes, which must not spell the token either.
        assert!(
            texts(&error).iter().all(|text| !text.contains(secret)),
            "the token leaked into an error"
        );
        let shown = format!("{error} {error:?}");
        assert!(
            !shown.contains(secret),
            "the token leaked into a formatted error"
        );
    }
}

/// Every piece of text an error carries.
fn texts(error: &Error) -> Vec<&str> {
    match error {
        Error::NotFound { endpoint } | Error::RateLimited { endpoint, .. } => vec![endpoint],
        Error::Validation {
            endpoint, fields, ..
        } => std::iter::once(endpoint.as_str())
            .chain(fields.iter().flat_map(|(field, messages)| {
                std::iter::once(field.as_str()).chain(messages.iter().map(String::as_str))
            }))
            .collect(),
        Error::Unauthorized {
            endpoint, detail, ..
        } => vec![endpoint, detail],
        Error::Transient { endpoint, reason } | Error::InvalidRequest { endpoint, reason } => {
            vec![endpoint, reason]
        }
        Error::Decode {
            endpoint,
            reason,
            body_prefix,
            ..
        } => vec![endpoint, reason, body_prefix],
        Error::UnexpectedStatus {
            endpoint,
            body_prefix,
            ..
        } => vec![endpoint, body_prefix],
        Error::Config { reason } => vec![reason],
    }
}
