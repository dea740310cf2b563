//! Checks the API server cannot do, as pure functions: the controller runs them before it talks
//! to authentik, so bad input never reaches authentik.

use std::fmt;

use sha2::{Digest, Sha256};
use url::Url;

use crate::ProxyConfigSpec;

/// authentik's `SlugField` limit (Django's default `max_length`).
pub const MAX_SLUG_LEN: usize = 50;

/// One thing wrong with a spec, naming the field and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "authentikConfig.skipPathRegex line {line} ({pattern:?}) is not a valid regular expression: {reason}"
    )]
    SkipPathRegex {
        line: usize,
        pattern: String,
        reason: String,
    },
    #[error("externalHost {value:?} is not usable: {reason}")]
    ExternalHost { value: String, reason: String },
    #[error("internalHost {value:?} is not usable: {reason}")]
    InternalHost { value: String, reason: String },
    #[error("authentikConfig.launchUrl {value:?} is not an http(s) URL")]
    LaunchUrl { value: String },
    #[error(
        "authentikConfig.basicAuthEnabled needs basicAuthUserAttribute and basicAuthPasswordAttribute (authentik rejects it otherwise)"
    )]
    BasicAuthAttributesMissing,
    #[error(
        "authentikConfig.applicationSlug {value:?} must match ^[-a-zA-Z0-9_]+$ and be at most {MAX_SLUG_LEN} characters"
    )]
    ApplicationSlug { value: String },
    #[error("authentikConfig.allowedGroups lists {group:?} twice")]
    DuplicateAllowedGroup { group: String },
}

/// Every problem found in a spec; shown to users joined in the `Ready` condition's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// A spec that passed every check, with its hosts in the form authentik wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedSpec {
    /// `https://host[:port][/path]`, no trailing slash.
    pub external_url: String,
    pub internal: InternalHost,
}

/// The parts of `internalHost` the controller compares with the Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalHost {
    /// `internalHost` as written, without a trailing slash: what authentik is given.
    pub url: String,
    pub scheme: String,
    pub host: String,
    /// Explicit port, or the scheme's default.
    pub port: u16,
}

/// Runs every check on `spec`; all problems are reported at once.
pub fn check_spec(spec: &ProxyConfigSpec) -> Result<CheckedSpec, SpecErrors> {
    let mut errors = Vec::new();
    let config = &spec.authentik_config;

    if let Err(e) = compile_skip_path_regexes(&config.skip_path_regex) {
        errors.push(e);
    }
    let external_url = normalize_external_host(&spec.external_host)
        .map_err(|e| errors.push(e))
        .ok();
    let internal = parse_internal_host(&spec.internal_host)
        .map_err(|e| errors.push(e))
        .ok();
    if let Some(launch_url) = &config.launch_url
        && !is_http_url(launch_url)
    {
        errors.push(SpecError::LaunchUrl {
            value: launch_url.clone(),
        });
    }
    if config.basic_auth_enabled
        && (is_blank(&config.basic_auth_user_attribute)
            || is_blank(&config.basic_auth_password_attribute))
    {
        errors.push(SpecError::BasicAuthAttributesMissing);
    }
    if let Some(slug) = &config.application_slug
        && !is_valid_slug(slug)
    {
        errors.push(SpecError::ApplicationSlug {
            value: slug.clone(),
        });
    }
    if let Some(groups) = &config.allowed_groups {
        let mut seen = std::collections::BTreeSet::new();
        for group in groups {
            if !seen.insert(group) {
                errors.push(SpecError::DuplicateAllowedGroup {
                    group: group.clone(),
                });
            }
        }
    }

    match (external_url, internal) {
        (Some(external_url), Some(internal)) if errors.is_empty() => Ok(CheckedSpec {
            external_url,
            internal,
        }),
        _ => Err(SpecErrors(errors)),
    }
}

/// Compiles every non-blank line of `skipPathRegex`. authentik evaluates them with Python's `re`,
/// so the check uses a regex engine with look-around and back-references too.
pub fn compile_skip_path_regexes(text: &str) -> Result<Vec<fancy_regex::Regex>, SpecError> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim_end_matches('\r')))
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(line_number, line)| {
            fancy_regex::Regex::new(line).map_err(|e| SpecError::SkipPathRegex {
                line: line_number,
                pattern: line.to_owned(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// `grafana.example.com` or `https://grafana.example.com/` → `https://grafana.example.com`.
pub fn normalize_external_host(value: &str) -> Result<String, SpecError> {
    let invalid = |reason: &str| SpecError::ExternalHost {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    if !trimmed.is_ascii() {
        return Err(invalid(
            "it contains non-ASCII characters; write internationalised names in punycode (xn--…)",
        ));
    }
    if trimmed.starts_with("http://") {
        return Err(invalid(
            "authentik publishes services over https; use a bare host or an https:// URL",
        ));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "https" {
        return Err(invalid("only https:// URLs are allowed"));
    }
    check_url_parts(&url).map_err(invalid)?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Parses `internalHost` (`http(s)://host[:port][/path]`).
pub fn parse_internal_host(value: &str) -> Result<InternalHost, SpecError> {
    let invalid = |reason: &str| SpecError::InternalHost {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(value.trim()).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("it must start with http:// or https://"));
    }
    check_url_parts(&url).map_err(invalid)?;
    let host = url
        .host_str()
        .ok_or_else(|| invalid("it has no host"))?
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| invalid("it has no port"))?;
    Ok(InternalHost {
        // As written (minus a trailing slash): authentik should show what the user wrote, not
        // a normalised form without the default port.
        url: value.trim().trim_end_matches('/').to_owned(),
        scheme: url.scheme().to_owned(),
        host,
        port,
    })
}

fn check_url_parts(url: &Url) -> Result<(), &'static str> {
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials do not belong in a host URL");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a query string or fragment is not allowed");
    }
    Ok(())
}

fn is_http_url(value: &str) -> bool {
    Url::parse(value)
        .is_ok_and(|u| (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some())
}

fn is_blank(value: &Option<String>) -> bool {
    value.as_deref().is_none_or(|v| v.trim().is_empty())
}

/// Whether authentik accepts `slug` (`^[-a-zA-Z0-9_]+$`, at most [`MAX_SLUG_LEN`]).
pub fn is_valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= MAX_SLUG_LEN
        && slug
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The application slug for a ProxyConfig that does not set one: `<namespace>-<name>`, with
/// characters authentik rejects replaced; names too long for authentik are shortened and made
/// unique again with a hash of the full name, so the result is the same on every run.
pub fn derive_application_slug(namespace: &str, name: &str) -> String {
    let full = format!("{namespace}-{name}");
    let sanitized: String = full
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if sanitized.len() <= MAX_SLUG_LEN && sanitized == full {
        return sanitized;
    }
    if sanitized.len() <= MAX_SLUG_LEN {
        // Replaced characters could make two names collide; the hash keeps them apart.
        return with_hash_suffix(&sanitized, &full, sanitized.len());
    }
    with_hash_suffix(&sanitized, &full, MAX_SLUG_LEN - 9)
}

fn with_hash_suffix(sanitized: &str, full: &str, keep: usize) -> String {
    let digest = Sha256::digest(full.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let keep = keep.min(MAX_SLUG_LEN - 9);
    let prefix = sanitized[..keep].trim_end_matches('-');
    format!("{prefix}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_path_regex_table() {
        let good = [
            "^/api/.*$",
            "",
            "^/api/.*$\n^/health$",
            "^/api/.*$\r\n^/metrics$\r\n",
            "(?=foo)bar",
            r"^/(?P<version>v\d+)/.*$",
            "\n\n^/a$\n\n",
        ];
        for text in good {
            assert!(
                compile_skip_path_regexes(text).is_ok(),
                "{text:?} should compile"
            );
        }
        let bad = [
            ("^/api/(.*$", 1),
            ("^/ok$\n[unclosed", 2),
            ("*starts-with-star", 1),
            ("^/a$\n\n(a)\\2\n", 3),
        ];
        for (text, line) in bad {
            match compile_skip_path_regexes(text) {
                Err(SpecError::SkipPathRegex { line: l, .. }) => {
                    assert_eq!(l, line, "{text:?}")
                }
                other => panic!("{text:?} should fail on line {line}, got {other:?}"),
            }
        }
    }

    #[test]
    fn external_host_table() {
        let good = [
            ("grafana.example.com", "https://grafana.example.com"),
            ("https://grafana.example.com", "https://grafana.example.com"),
            (
                "https://grafana.example.com/",
                "https://grafana.example.com",
            ),
            ("Grafana.Example.com", "https://grafana.example.com"),
            (
                "grafana.example.com:8443",
                "https://grafana.example.com:8443",
            ),
            ("https://example.com/grafana", "https://example.com/grafana"),
            ("  localhost  ", "https://localhost"),
            ("xn--bcher-kva.example", "https://xn--bcher-kva.example"),
        ];
        for (input, expected) in good {
            assert_eq!(
                normalize_external_host(input).as_deref(),
                Ok(expected),
                "{input:?}"
            );
        }
        let bad = [
            "",
            "   ",
            "http://grafana.example.com",
            "ftp://grafana.example.com",
            "bücher.example",
            "https://user:pw@example.com",
            "https://example.com/?a=b",
            "https://example.com/#frag",
            "grafana example.com",
            "https://",
        ];
        for input in bad {
            assert!(
                matches!(
                    normalize_external_host(input),
                    Err(SpecError::ExternalHost { .. })
                ),
                "{input:?} should be rejected"
            );
        }
    }

    #[test]
    fn internal_host_table() {
        let parsed =
            parse_internal_host("http://grafana.monitoring.svc.cluster.local:3000").expect("valid");
        assert_eq!(parsed.host, "grafana.monitoring.svc.cluster.local");
        assert_eq!(parsed.port, 3000);
        assert_eq!(parsed.scheme, "http");
        assert_eq!(
            parsed.url,
            "http://grafana.monitoring.svc.cluster.local:3000"
        );

        assert_eq!(parse_internal_host("http://svc").expect("valid").port, 80);
        assert_eq!(
            parse_internal_host("https://svc/").expect("valid").port,
            443
        );
        assert_eq!(
            parse_internal_host("https://svc:8443/app/")
                .expect("valid")
                .url,
            "https://svc:8443/app"
        );

        for bad in [
            "",
            "grafana:3000",
            "ftp://svc",
            "http://",
            "http://svc:99999",
            "http://a:b@svc",
            "http://svc?x=1",
        ] {
            assert!(
                parse_internal_host(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn slug_is_deterministic_and_valid() {
        let table = [
            ("monitoring", "grafana-proxy", "monitoring-grafana-proxy"),
            ("a", "b", "a-b"),
        ];
        for (ns, name, expected) in table {
            assert_eq!(derive_application_slug(ns, name), expected);
        }
        let dotted = derive_application_slug("default", "my.app");
        assert!(dotted.starts_with("default-my-app-"), "{dotted}");
        assert_ne!(dotted, derive_application_slug("default", "my-app"));

        let long_name = "x".repeat(200);
        let long = derive_application_slug("some-namespace", &long_name);
        assert!(long.len() <= MAX_SLUG_LEN, "{long}");
        assert!(is_valid_slug(&long), "{long}");
        assert_eq!(long, derive_application_slug("some-namespace", &long_name));
        assert_ne!(
            long,
            derive_application_slug("some-namespace", &"x".repeat(199))
        );

        for (ns, name) in [("ns", "UPPER"), ("ns", "a.b.c"), ("n", &"-".repeat(80))] {
            let slug = derive_application_slug(ns, name);
            assert!(is_valid_slug(&slug), "{ns}/{name} gave {slug}");
        }
    }

    proptest::proptest! {
        /// Any DNS name, bare or as an https URL, in any case and with a trailing slash,
        /// normalises to one lower-case https URL, and normalising again changes nothing.
        #[test]
        fn external_hosts_normalise_idempotently(
            labels in proptest::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", 1..4),
            tld in "[a-z]{2,6}",
            port in proptest::option::of(1u16..),
            scheme in proptest::bool::ANY,
            slash in proptest::bool::ANY,
        ) {
            let mut host = format!("{}.{tld}", labels.join("."));
            if let Some(port) = port {
                host = format!("{host}:{port}");
            }
            let input = format!("{}{host}{}", if scheme { "https://" } else { "" }, if slash { "/" } else { "" });
            let normalised = normalize_external_host(&input).expect("a DNS name is accepted");
            proptest::prop_assert!(normalised.starts_with("https://"));
            proptest::prop_assert!(!normalised.ends_with('/'));
            proptest::prop_assert_eq!(normalised.to_lowercase(), normalised.clone());
            proptest::prop_assert_eq!(normalize_external_host(&normalised), Ok(normalised));
        }

        /// Arbitrary text never panics: it is accepted as an https URL or rejected naming
        /// externalHost.
        #[test]
        fn arbitrary_external_hosts_never_panic(text in ".{0,60}") {
            match normalize_external_host(&text) {
                Ok(url) => proptest::prop_assert!(url.starts_with("https://")),
                Err(error) => proptest::prop_assert!(error.to_string().starts_with("externalHost")),
            }
        }

        /// Internal hosts parse to the port they name (or the scheme's default).
        #[test]
        fn internal_hosts_keep_their_port(name in "[a-z][a-z0-9-]{0,20}", port in 1u16.., https in proptest::bool::ANY) {
            // `xn--` starts a punycode label, which must decode: "xn--6e5s70wem76--" is rightly
            // rejected, so such names are not "any name" for this property.
            proptest::prop_assume!(!name.starts_with("xn--"));
            let scheme = if https { "https" } else { "http" };
            let parsed = parse_internal_host(&format!("{scheme}://{name}.ns.svc:{port}")).expect("valid");
            proptest::prop_assert_eq!(parsed.port, port);
            proptest::prop_assert_eq!(parsed.scheme, scheme);
        }

        /// Derived slugs are always valid authentik slugs, whatever the names.
        #[test]
        fn derived_slugs_are_always_valid(namespace in "[a-z0-9-]{1,63}", name in "[a-z0-9.-]{1,253}") {
            let slug = derive_application_slug(&namespace, &name);
            proptest::prop_assert!(is_valid_slug(&slug), "{}", slug);
            proptest::prop_assert_eq!(slug, derive_application_slug(&namespace, &name));
        }
    }

    #[test]
    fn slug_validity_table() {
        for good in ["a", "grafana_proxy-1", &"a".repeat(50)] {
            assert!(is_valid_slug(good), "{good}");
        }
        for bad in ["", "has space", "dot.ted", "ümlaut", &"a".repeat(51)] {
            assert!(!is_valid_slug(bad), "{bad}");
        }
    }
}
