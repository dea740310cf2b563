//! Which authentik releases this client supports, and how a reported version is judged.
//!
//! The per-release API facts (`crates/authentik-double/contract/versions/`, see
//! `docs/authentik-versions.md`) show that every request this client makes is accepted, in the
//! same form, by every release from 2024.10 on; nothing is switched by version. The version is
//! read to tell users when their server is outside what was proven.

use std::fmt;

/// The oldest supported release, `(year, minor)`.
pub const OLDEST_SUPPORTED: (u32, u32) = (2024, 10);
/// The newest supported release year: every 2026 release is supported.
pub const NEWEST_SUPPORTED_YEAR: u32 = 2026;

/// A server's `version_current`, judged against the supported range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerVersion {
    /// A release inside the supported range.
    Supported(String),
    /// A release outside it: served as well as possible, and reported.
    Unsupported(String),
    /// Not a `YEAR.MINOR[.PATCH…]` release number (a development build, garbage).
    Unknown(String),
}

impl ServerVersion {
    /// Judges a reported version string; never fails.
    pub fn classify(reported: &str) -> Self {
        let reported = reported.trim();
        let mut parts = reported.split('.');
        let number = |part: Option<&str>| part.and_then(|p| p.parse::<u32>().ok());
        match (number(parts.next()), number(parts.next())) {
            (Some(year), Some(minor)) if year >= 2000 => {
                if (year, minor) >= OLDEST_SUPPORTED && year <= NEWEST_SUPPORTED_YEAR {
                    ServerVersion::Supported(reported.to_owned())
                } else {
                    ServerVersion::Unsupported(reported.to_owned())
                }
            }
            _ => ServerVersion::Unknown(reported.to_owned()),
        }
    }

    /// The version as the server reported it.
    pub fn as_str(&self) -> &str {
        match self {
            ServerVersion::Supported(v)
            | ServerVersion::Unsupported(v)
            | ServerVersion::Unknown(v) => v,
        }
    }

    /// The supported range, for messages.
    pub fn supported_range() -> String {
        format!(
            "{}.{}–{NEWEST_SUPPORTED_YEAR}.x",
            OLDEST_SUPPORTED.0, OLDEST_SUPPORTED.1
        )
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supported_range_is_2024_10_through_2026() {
        for v in [
            "2024.10.0",
            "2024.10.5",
            "2025.12.4",
            "2026.2.2",
            "2026.8.5",
            "2026.12",
        ] {
            assert_eq!(
                ServerVersion::classify(v),
                ServerVersion::Supported(v.to_owned()),
                "{v}"
            );
        }
        for v in ["2024.8.3", "2023.10.7", "2027.2.0", "2024.6"] {
            assert_eq!(
                ServerVersion::classify(v),
                ServerVersion::Unsupported(v.to_owned()),
                "{v}"
            );
        }
    }

    #[test]
    fn unparseable_versions_are_unknown_not_errors() {
        for v in [
            "",
            "garbage",
            "main",
            "2025",
            "v2025.12.4",
            "12.4",
            "2025.x.1",
        ] {
            assert_eq!(
                ServerVersion::classify(v),
                ServerVersion::Unknown(v.to_owned()),
                "{v}"
            );
        }
        assert_eq!(ServerVersion::classify(" 2025.12.4 ").as_str(), "2025.12.4");
        assert_eq!(ServerVersion::supported_range(), "2024.10–2026.x");
    }
}
