//! HS256 JSON Web Tokens: the outpost's `state` parameter and the id_token it passes on as
//! `X-Authentik-Jwt`. ring (already in the build for rustls) signs; a JWT is three base64url
//! parts, which is all the framing there is.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde_json::{Value, json};

/// `header.claims.signature`, HS256 over the first two parts.
pub(crate) fn sign(key: &[u8], claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{body}");
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        signing_input.as_bytes(),
    );
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The claims of a token this key signed; `None` for anything else.
pub(crate) fn verify(key: &[u8], token: &str) -> Option<Value> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        signing_input.as_bytes(),
        &signature,
    )
    .ok()?;
    let (_, body) = signing_input.split_once('.')?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}

/// The claims of any JWT, unverified (tests and diagnostics read tokens they did not sign).
pub fn claims_unverified(token: &str) -> Option<Value> {
    let body = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let claims = json!({"iss": "goauthentik.io/outpost/abc", "redirect": "https://a/"});
        let token = sign(b"secret", &claims);
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(verify(b"secret", &token), Some(claims.clone()));
        assert_eq!(claims_unverified(&token), Some(claims));
        assert_eq!(verify(b"other", &token), None);
        let forged = sign(b"other", &json!({"iss": "x"}));
        let (head, _) = token.rsplit_once('.').unwrap_or_default();
        let (_, sig) = forged.rsplit_once('.').unwrap_or_default();
        assert_eq!(verify(b"secret", &format!("{head}.{sig}")), None);
        assert_eq!(verify(b"secret", "not a token"), None);
    }
}
