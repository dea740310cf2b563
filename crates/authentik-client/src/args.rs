//! The authentik connection settings both controllers take, as one set of flags and
//! environment variables (the original system's `AUTHENTIK_HOST` and `AUTHENTIK_TOKEN`).
//! Enabled by the `clap` feature.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::ClientConfig;
use crate::token::{ApiToken, TokenSourceError};

/// `AUTHENTIK_HOST`, the token (as a value or a file) and the request timeout. The host is
/// optional here; a program that cannot run without authentik marks it required with
/// `#[command(mut_arg("authentik_host", |arg| arg.required(true)))]`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// authentik base URL, e.g. http://authentik-server.authentik.svc.cluster.local:9000
    #[arg(long, env = "AUTHENTIK_HOST")]
    pub authentik_host: Option<String>,

    /// authentik API token (prefer --authentik-token-file).
    #[arg(
        long,
        env = "AUTHENTIK_TOKEN",
        hide_env_values = true,
        conflicts_with = "authentik_token_file"
    )]
    pub authentik_token: Option<String>,

    /// File holding the authentik API token (e.g. a mounted Secret).
    #[arg(long, env = "AUTHENTIK_TOKEN_FILE")]
    pub authentik_token_file: Option<PathBuf>,

    /// Timeout of one authentik request.
    #[arg(long, env = "AUTHENTIK_TIMEOUT", default_value = "15s", value_parser = timeout)]
    pub authentik_timeout: Duration,
}

/// Host and token must come together.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(
        "AUTHENTIK_HOST is set but there is no authentik token: set AUTHENTIK_TOKEN or --authentik-token, or AUTHENTIK_TOKEN_FILE / --authentik-token-file"
    )]
    MissingToken,
    #[error("an authentik token is set but AUTHENTIK_HOST is not: set both, or neither")]
    MissingHost,
    #[error(transparent)]
    Token(#[from] TokenSourceError),
}

impl ConnectionArgs {
    /// The client configuration (`None`: neither host nor token is set), with the token read;
    /// the token is never printed. The URL itself is checked when the client is built.
    pub fn into_config(self) -> Result<Option<ClientConfig>, ConnectionError> {
        let token = ApiToken::from_value_or_file(
            self.authentik_token,
            self.authentik_token_file.as_deref(),
        )?;
        let host = self.authentik_host.filter(|h| !h.trim().is_empty());
        match (host, token) {
            (None, None) => Ok(None),
            (Some(host), Some(token)) => {
                let mut config = ClientConfig::new(host, token);
                config.request_timeout = self.authentik_timeout;
                Ok(Some(config))
            }
            (Some(_), None) => Err(ConnectionError::MissingToken),
            (None, Some(_)) => Err(ConnectionError::MissingHost),
        }
    }
}

fn timeout(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value.trim())
        .map_err(|e| format!("AUTHENTIK_TIMEOUT: {value:?} is not a duration like 15s or 1m ({e})"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Optional {
        #[command(flatten)]
        authentik: ConnectionArgs,
    }

    #[derive(Debug, Parser)]
    #[command(mut_arg("authentik_host", |arg| arg.required(true)))]
    struct Required {
        #[command(flatten)]
        authentik: ConnectionArgs,
    }

    fn config(argv: &[&str]) -> Result<Option<ClientConfig>, ConnectionError> {
        let mut full = vec!["test"];
        full.extend_from_slice(argv);
        Optional::try_parse_from(full)
            .expect("parses")
            .authentik
            .into_config()
    }

    #[test]
    fn host_and_token_come_together() {
        assert!(matches!(config(&[]), Ok(None)));
        let both = config(&[
            "--authentik-host",
            "http://a:9000",
            "--authentik-token",
            "secret-t",
            "--authentik-timeout",
            "5s",
        ])
        .expect("valid")
        .expect("configured");
        assert_eq!(both.request_timeout, Duration::from_secs(5));
        assert!(!format!("{both:?}").contains("secret-t"));
        let no_token = config(&["--authentik-host", "http://a:9000"]).expect_err("no token");
        assert!(
            no_token.to_string().contains("no authentik token"),
            "{no_token}"
        );
        let no_host = config(&["--authentik-token", "secret-t"]).expect_err("no host");
        assert!(no_host.to_string().contains("AUTHENTIK_HOST"), "{no_host}");
        assert!(!no_host.to_string().contains("secret-t"));
    }

    #[test]
    fn a_program_can_require_the_host() {
        let missing = Required::try_parse_from(["test", "--authentik-token", "t"])
            .expect_err("host required")
            .to_string();
        assert!(missing.contains("--authentik-host"), "{missing}");
        assert!(Required::try_parse_from(["test", "--authentik-host", "http://a:9000"]).is_ok());
        let bad = Optional::try_parse_from(["test", "--authentik-timeout", "soon"])
            .expect_err("bad duration")
            .to_string();
        assert!(
            bad.contains("AUTHENTIK_TIMEOUT") && bad.contains("soon"),
            "{bad}"
        );
    }
}
