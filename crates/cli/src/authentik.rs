//! The authentik client from `--authentik-url` and the token (file or `$AUTHENTIK_TOKEN`).

use std::time::Duration;

use gitops_authentik::{ApiToken, AuthentikClient, ClientConfig, RetryPolicy};

use crate::args::Global;
use crate::error::CliError;

/// The environment variable holding the token when no token file is given.
pub const TOKEN_ENV: &str = "AUTHENTIK_TOKEN";

/// `None` when no authentik URL is configured (commands that can do without say so).
pub fn optional(global: &Global) -> Result<Option<AuthentikClient>, CliError> {
    let Some(url) = &global.authentik_url else {
        return Ok(None);
    };
    let token = match &global.authentik_token_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|error| {
                CliError::file(path, format!("cannot read the authentik token: {error}"))
            })?
            .trim()
            .to_owned(),
        None => std::env::var(TOKEN_ENV)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    };
    if token.is_empty() {
        return Err(CliError::Config(format!(
            "an authentik URL is set but no token: set {TOKEN_ENV} or --authentik-token-file"
        )));
    }
    let mut config = ClientConfig::new(url.clone(), ApiToken::new(token));
    // A CLI run should answer within seconds, not wait out a controller's retry budget.
    config.request_timeout = Duration::from_secs(15);
    config.retry = RetryPolicy {
        max_attempts: 2,
        max_elapsed: Duration::from_secs(10),
        ..RetryPolicy::default()
    };
    AuthentikClient::new(config)
        .map(Some)
        .map_err(|error| CliError::Authentik(error.to_string()))
}

/// For commands that cannot work without authentik.
pub fn required(global: &Global) -> Result<AuthentikClient, CliError> {
    optional(global)?.ok_or_else(|| {
        CliError::Config(
            "this command needs authentik: set --authentik-url (or AUTHENTIK_HOST) and the token"
                .to_owned(),
        )
    })
}
