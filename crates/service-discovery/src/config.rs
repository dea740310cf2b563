//! Configuration from flags and environment (the original system's `AUTHENTIK_HOST` and
//! `AUTHENTIK_TOKEN` included). Anything missing or malformed stops start-up with one line
//! saying which setting and why.

use std::collections::BTreeSet;
use std::time::Duration;

use clap::Parser;
use gitops_authentik::{ClientConfig, ConnectionArgs, ConnectionError, OutpostSelector};
use gitops_crd::names;
use gitops_runtime::{ProcessArgs, duration};

#[derive(Debug, Parser)]
#[command(
    name = "gitops-service-discovery",
    version,
    about = "Keeps authentik proxy providers, applications and outpost assignments matching ProxyConfigs",
    mut_arg("authentik_host", |arg| arg.required(true))
)]
pub struct Args {
    /// Where authentik is and how to authenticate (shared with the cleanup controller).
    #[command(flatten)]
    pub authentik: ConnectionArgs,

    /// Timeout of one outpost write instead: authentik's slowest call, growing with the
    /// number of providers in the outpost.
    #[arg(long, env = "AUTHENTIK_OUTPOST_TIMEOUT", default_value = "2m", value_parser = duration("AUTHENTIK_OUTPOST_TIMEOUT"))]
    pub authentik_outpost_timeout: Duration,

    /// Authorization flow (slug or UUID) for ProxyConfigs that name none.
    #[arg(
        long,
        env = "DEFAULT_AUTHORIZATION_FLOW",
        default_value = names::DEFAULT_AUTHORIZATION_FLOW
    )]
    pub default_authorization_flow: String,

    /// Invalidation flow (slug or UUID) for ProxyConfigs that name none.
    #[arg(
        long,
        env = "DEFAULT_INVALIDATION_FLOW",
        default_value = names::DEFAULT_INVALIDATION_FLOW
    )]
    pub default_invalidation_flow: String,

    /// Outpost (name or UUID) for ProxyConfigs that name none; `embedded` is authentik's
    /// embedded outpost.
    #[arg(long, env = "DEFAULT_OUTPOST", default_value = names::DEFAULT_OUTPOST)]
    pub default_outpost: String,

    /// Cookie domain for providers whose ProxyConfig sets none.
    #[arg(long, env = "COOKIE_DOMAIN")]
    pub cookie_domain: Option<String>,

    /// How often authentik is re-read in full to find and revert hand edits.
    #[arg(long, env = "RESYNC_INTERVAL", default_value = "5m", value_parser = duration("RESYNC_INTERVAL"))]
    pub resync_interval: Duration,

    /// ProxyConfigs reconciled at once.
    #[arg(long, env = "MAX_CONCURRENT_RECONCILES", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// authentik requests in flight at once.
    #[arg(long, env = "AUTHENTIK_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub authentik_concurrency: u16,

    /// While outpost assignments keep coming, how long they are collected into one write (an
    /// assignment after a quiet spell is written at once).
    #[arg(long, env = "OUTPOST_BATCH_WINDOW", default_value = "500ms", value_parser = duration("OUTPOST_BATCH_WINDOW"))]
    pub outpost_batch_window: Duration,

    /// Namespace pairs `FROM:TO` allowing a ProxyConfig in FROM to publish a Service in TO
    /// (comma-separated; `*` as FROM allows any namespace).
    #[arg(long, env = "CROSS_NAMESPACE_ALLOWLIST", value_delimiter = ',', value_parser = parse_namespace_pair)]
    pub allow_cross_namespace: Vec<(String, String)>,

    /// Base URL of the outpost that reverse proxies send forward-auth requests to (the
    /// Middlewares of ProxyConfigs with `forwardAuth`, and the Service an HTTPRoute
    /// `ExternalAuth` filter names, which needs an in-cluster `http://<service>.<namespace>.svc`
    /// address); default: AUTHENTIK_HOST, whose server hosts the embedded outpost.
    #[arg(long, env = "FORWARD_AUTH_OUTPOST_URL")]
    pub forward_auth_outpost_url: Option<String>,

    /// Create ProxyConfigs for Services labelled authentik.io/proxy=enabled.
    #[arg(long, env = "SERVICE_DISCOVERY_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub discovery: bool,

    /// Observability, leadership, logging and scope (shared with the cleanup controller).
    #[command(flatten)]
    pub process: ProcessArgs,

    /// Without a command: run the controller.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// One-shot commands instead of the controller.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check that authentik accepts the configured token (`GET /api/v3/core/users/me/`), print
    /// one line and exit 0 (ok) or 1: the chart's `helm test`.
    CheckAuthentik {
        /// Where the token comes from, named when authentik refuses it (the chart passes its
        /// Secret).
        #[arg(long, default_value = "AUTHENTIK_TOKEN/AUTHENTIK_TOKEN_FILE")]
        token_source: String,
    },
}

/// Validated settings the controller runs with.
#[derive(Debug)]
pub struct Settings {
    /// With the outpost write timeout set.
    pub authentik: ClientConfig,
    pub default_authorization_flow: String,
    pub default_invalidation_flow: String,
    pub default_outpost: OutpostSelector,
    pub cookie_domain: Option<String>,
    pub resync_interval: Duration,
    pub concurrency: u16,
    pub authentik_concurrency: usize,
    pub outpost_batch_window: Duration,
    pub cross_namespace: CrossNamespacePolicy,
    pub watch_namespace: Option<String>,
    pub discovery: bool,
    /// Outpost base URL for forward auth, without a trailing `/`.
    pub forward_auth_outpost_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no authentik connection: set AUTHENTIK_HOST and AUTHENTIK_TOKEN (or AUTHENTIK_TOKEN_FILE)"
    )]
    MissingConnection,
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("RESYNC_INTERVAL must be at least 1s")]
    ResyncTooShort,
    #[error(
        "FORWARD_AUTH_OUTPOST_URL {0:?} is not an http:// or https:// URL (e.g. http://authentik-server.authentik.svc.cluster.local:9000)"
    )]
    OutpostUrl(String),
}

impl Args {
    /// Checks everything and reads the token; the token is never printed. (The authentik URL
    /// is checked when the client is built.)
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        let mut authentik = self
            .authentik
            .into_config()?
            .ok_or(ConfigError::MissingConnection)?;
        authentik.outpost_write_timeout = self.authentik_outpost_timeout;
        if self.resync_interval < Duration::from_secs(1) {
            return Err(ConfigError::ResyncTooShort);
        }
        let forward_auth_outpost_url = outpost_url(
            self.forward_auth_outpost_url.as_deref(),
            &authentik.base_url,
        )?;
        Ok(Settings {
            authentik,
            default_authorization_flow: self.default_authorization_flow,
            default_invalidation_flow: self.default_invalidation_flow,
            default_outpost: OutpostSelector::parse(&self.default_outpost),
            cookie_domain: self.cookie_domain.filter(|d| !d.trim().is_empty()),
            resync_interval: self.resync_interval,
            concurrency: self.concurrency,
            authentik_concurrency: usize::from(self.authentik_concurrency),
            outpost_batch_window: self.outpost_batch_window,
            cross_namespace: CrossNamespacePolicy {
                allowed: self.allow_cross_namespace.into_iter().collect(),
            },
            watch_namespace: self.process.watch_namespace(),
            discovery: self.discovery,
            forward_auth_outpost_url,
        })
    }
}

/// The outpost base URL: the given one, else authentik's (whose server hosts the embedded
/// outpost) without an API path.
fn outpost_url(given: Option<&str>, authentik: &str) -> Result<String, ConfigError> {
    let url = match given.map(str::trim).filter(|url| !url.is_empty()) {
        Some(url) => url,
        None => authentik.trim_end_matches('/').trim_end_matches("/api/v3"),
    };
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or_default();
    if host.is_empty() || host.starts_with('/') || url.chars().any(char::is_whitespace) {
        return Err(ConfigError::OutpostUrl(url.to_owned()));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Which ProxyConfig namespaces may publish Services of which other namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrossNamespacePolicy {
    allowed: BTreeSet<(String, String)>,
}

impl CrossNamespacePolicy {
    pub fn allows(&self, from: &str, to: &str) -> bool {
        from == to
            || self.allowed.contains(&(from.to_owned(), to.to_owned()))
            || self.allowed.contains(&("*".to_owned(), to.to_owned()))
    }
}

fn parse_namespace_pair(value: &str) -> Result<(String, String), String> {
    match value.trim().split_once(':') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() && !to.contains(':') => {
            Ok((from.to_owned(), to.to_owned()))
        }
        _ => Err(format!("{value:?} is not FROM:TO (e.g. apps:monitoring)")),
    }
}

#[cfg(test)]
mod tests {
    use gitops_authentik::{ApiToken, TokenSourceError};

    use super::*;

    fn args(extra: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = vec![
            "gitops-service-discovery",
            "--authentik-host",
            "http://authentik:9000",
        ];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv)
    }

    #[test]
    fn defaults_match_the_original_system() {
        let settings = args(&["--authentik-token", "secret-token-value"])
            .expect("parses")
            .into_settings()
            .expect("valid");
        assert_eq!(settings.resync_interval, Duration::from_secs(300));
        assert_eq!(
            settings.default_authorization_flow,
            "default-provider-authorization-implicit-consent"
        );
        assert_eq!(
            settings.default_invalidation_flow,
            "default-provider-invalidation-flow"
        );
        assert_eq!(settings.default_outpost, OutpostSelector::Embedded);
        assert_eq!(names::DEFAULT_OUTPOST, OutpostSelector::EMBEDDED);
        assert!(settings.discovery);
        assert_eq!(settings.forward_auth_outpost_url, "http://authentik:9000");
        assert!(!format!("{settings:?}").contains("secret-token-value"));
    }

    #[test]
    fn forward_auth_outpost_url_is_given_or_authentiks_own() {
        let outpost = |extra: &[&str]| {
            let mut argv = vec!["--authentik-token", "t"];
            argv.extend_from_slice(extra);
            args(&argv).expect("parses").into_settings()
        };
        let given = outpost(&["--forward-auth-outpost-url", "https://outpost.example.com/"])
            .expect("valid");
        assert_eq!(
            given.forward_auth_outpost_url,
            "https://outpost.example.com"
        );
        assert_eq!(
            outpost_url(None, "https://auth.example.com/api/v3/").expect("valid"),
            "https://auth.example.com"
        );
        for bad in ["outpost:9000", "http://", "http:// spaced"] {
            let error = outpost(&["--forward-auth-outpost-url", bad]).expect_err("bad URL");
            assert!(
                error.to_string().contains("FORWARD_AUTH_OUTPOST_URL"),
                "{error}"
            );
        }
    }

    #[test]
    fn malformed_settings_are_one_clear_line() {
        let error = args(&["--authentik-token", "t", "--resync-interval", "soon"])
            .expect_err("bad duration")
            .to_string();
        assert!(
            error.contains("soon") && error.contains("duration"),
            "{error}"
        );

        let error = args(&[
            "--authentik-token",
            "t",
            "--allow-cross-namespace",
            "nocolon",
        ])
        .expect_err("bad pair")
        .to_string();
        assert!(error.contains("FROM:TO"), "{error}");

        let error = args(&["--authentik-token", "t", "--concurrency", "0"])
            .expect_err("zero concurrency")
            .to_string();
        assert!(error.contains("concurrency"), "{error}");

        let missing = args(&[])
            .expect("parses")
            .into_settings()
            .expect_err("no token");
        assert!(
            matches!(
                missing,
                ConfigError::Connection(ConnectionError::MissingToken)
            ),
            "{missing}"
        );
        let error = Args::try_parse_from(["gitops-service-discovery", "--authentik-token", "t"])
            .expect_err("the host is required")
            .to_string();
        assert!(error.contains("--authentik-host"), "{error}");
    }

    #[test]
    fn token_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "file-token\n").expect("write");
        let settings = args(&["--authentik-token-file", path.to_str().expect("utf8")])
            .expect("parses")
            .into_settings()
            .expect("valid");
        assert_eq!(settings.authentik.token, ApiToken::new("file-token"));

        std::fs::write(&path, "  \n").expect("write");
        let error = args(&["--authentik-token-file", path.to_str().expect("utf8")])
            .expect("parses")
            .into_settings()
            .expect_err("empty");
        assert!(matches!(
            error,
            ConfigError::Connection(ConnectionError::Token(TokenSourceError::EmptyFile(_)))
        ));
    }

    #[test]
    fn cross_namespace_policy() {
        let settings = args(&[
            "--authentik-token",
            "t",
            "--allow-cross-namespace",
            "apps:monitoring,*:shared",
        ])
        .expect("parses")
        .into_settings()
        .expect("valid");
        let policy = &settings.cross_namespace;
        assert!(policy.allows("x", "x"));
        assert!(policy.allows("apps", "monitoring"));
        assert!(!policy.allows("monitoring", "apps"));
        assert!(policy.allows("anything", "shared"));
        assert!(!policy.allows("apps", "kube-system"));
    }
}
