//! Client configuration and base-URL normalisation.

use std::time::Duration;

use url::Url;

use crate::error::Error;
use crate::retry::RetryPolicy;
use crate::token::ApiToken;

/// Idle connections are dropped after this: half of authentik's 2 s keep-alive (gunicorn's
/// default), so the server never closes a connection we are about to reuse. reqwest's own
/// default (90 s) made kept-alive writes race the server's close under load.
pub const DEFAULT_IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// The API's base path below the server's root.
const API_PATH: &str = "api/v3";

/// Everything [`AuthentikClient::new`](crate::AuthentikClient::new) needs.
///
/// `Debug` is safe to log: the token prints as `ApiToken(***)`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server, as `https://host`, `https://host/api/v3`, or either with a sub-path
    /// (e.g. `http://authentik-server.authentik.svc.cluster.local:9000`).
    pub base_url: String,
    /// The API token sent as `Authorization: Bearer`.
    pub token: ApiToken,
    /// Limit for one HTTP attempt (connect, send, and read the whole response).
    pub request_timeout: Duration,
    /// Limit for one outpost provider-list write instead: authentik's slowest call, and one
    /// that grows with the outpost's providers and with each provider added (on a 2-core server
    /// ≈0.5 s + 6 ms per provider, plus ≈60 ms per added provider: adding 100 took 8.3 s).
    pub outpost_write_timeout: Duration,
    /// Retry rules for idempotent calls.
    pub retry: RetryPolicy,
    /// How long an idle kept-alive connection stays in the pool. It must stay below the
    /// server's own keep-alive timeout (authentik's gunicorn: 2 s): a connection the server
    /// is closing while we reuse it fails the request (connection reset, or an empty 405).
    pub idle_connection_timeout: Duration,
}

impl ClientConfig {
    /// A configuration with a 30 s request timeout, 2 min for outpost writes, idle
    /// connections kept for [`DEFAULT_IDLE_CONNECTION_TIMEOUT`], and the default
    /// [`RetryPolicy`].
    pub fn new(base_url: impl Into<String>, token: ApiToken) -> Self {
        Self {
            base_url: base_url.into(),
            token,
            request_timeout: Duration::from_secs(30),
            outpost_write_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            idle_connection_timeout: DEFAULT_IDLE_CONNECTION_TIMEOUT,
        }
    }
}

/// Turns any accepted spelling of the server address into the API root, ending in `/api/v3/`.
pub(crate) fn normalise_base_url(raw: &str) -> Result<Url, Error> {
    let invalid = |reason: String| Error::Config { reason };
    // The raw value is never echoed: it could carry credentials.
    let mut url = Url::parse(raw.trim()).map_err(|e| invalid(format!("base URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(invalid(format!(
            "base URL must be an http or https URL, not {:?}",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Credentials belong in the token; keeping them would leak them into error messages.
        return Err(invalid("base URL must not contain credentials".to_owned()));
    }
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/').to_owned();
    let api_root = if path.ends_with(&format!("/{API_PATH}")) {
        format!("{path}/")
    } else {
        format!("{path}/{API_PATH}/")
    };
    url.set_path(&api_root);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_spellings_normalise_to_the_api_root() {
        let cases = [
            (
                "https://auth.example.com",
                "https://auth.example.com/api/v3/",
            ),
            (
                "https://auth.example.com/",
                "https://auth.example.com/api/v3/",
            ),
            (
                "https://auth.example.com/api/v3",
                "https://auth.example.com/api/v3/",
            ),
            (
                "https://auth.example.com/api/v3/",
                "https://auth.example.com/api/v3/",
            ),
            (
                "https://example.com/authentik",
                "https://example.com/authentik/api/v3/",
            ),
            (
                "https://example.com/authentik/api/v3//?x=1#f",
                "https://example.com/authentik/api/v3/",
            ),
            (
                " http://authentik-server.authentik.svc.cluster.local:9000\n",
                "http://authentik-server.authentik.svc.cluster.local:9000/api/v3/",
            ),
        ];
        for (raw, expected) in cases {
            let url = normalise_base_url(raw).expect("valid base URL");
            assert_eq!(url.as_str(), expected, "{raw:?}");
        }
    }

    #[test]
    fn unusable_base_urls_are_rejected() {
        for raw in [
            "",
            "authentik:9000",
            "ftp://host",
            "mailto:a@b",
            "https://user:pw@host",
        ] {
            let err = normalise_base_url(raw).expect_err(raw);
            assert!(matches!(err, Error::Config { .. }), "{raw}: {err:?}");
        }
        for raw in [
            "https://user:hunter2@host",
            "ftp://user:hunter2@host",
            "https://user:hunter2@",
        ] {
            let err = normalise_base_url(raw).expect_err(raw);
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }
}
