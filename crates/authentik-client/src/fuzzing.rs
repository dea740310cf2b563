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
    // Real tokens are long random mixes of letters and digits (authentik's are 60 characters).
    // Short, digit-only or quote-bearing ones match by coincidence: digits of a status code
    // next to a body, or the quotes Debug output adds around every string.
    let realistic = secret.len() >= 16
        && secret.chars().any(|c| c.is_ascii_alphabetic())
        && secret.chars().any(|c| c.is_ascii_digit())
        && secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c));
    for error in std::iter::once(mapped).chain(decode_error) {
        let shown = format!("{error} {error:?}");
        assert!(
            !realistic || !shown.contains(secret),
            "the token leaked into an error"
        );
    }
}
